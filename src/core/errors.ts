/**
 * A configuration that cannot be served. Carries every problem found, each
 * prefixed with its config path (`issuers[1].audiences: required`), so one run
 * reports them all.
 */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}
