/**
 * The base of this service's errors. `code` says what kind of error it is (`ERR_CONFIG_INVALID`)
 * and stays the same across releases, while messages may be reworded: code that tells
 * errors apart tests `code` or `instanceof`, not the message. The codes are listed in
 * docs/architecture.md ("Error codes").
 */
export abstract class AuthzError extends Error {
  abstract readonly code: string;
}

/** One configuration problem: the config path of the value at fault and what is wrong with it. */
export interface ConfigProblem {
  /** e.g. `rules[2].require.scopes_any`; `(root)` for the whole document, a file name or variable otherwise. */
  readonly path: string;
  readonly message: string;
}

/** A problem line `path: message` as a value (the path is everything before the first ": "). */
export function configProblem(line: string): ConfigProblem {
  const at = line.indexOf(': ');
  return at < 0
    ? { path: '(root)', message: line }
    : { path: line.slice(0, at), message: line.slice(at + 2) };
}

/**
 * A configuration that cannot be served. Carries every problem found, each
 * prefixed with its config path (`issuers[1].audiences: required`), so one run
 * reports them all; `details` has them as `{path, message}` values.
 */
export class ConfigError extends AuthzError {
  readonly code = 'ERR_CONFIG_INVALID';

  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }

  get details(): ConfigProblem[] {
    return this.problems.map(configProblem);
  }
}

/**
 * Runs `load`; a ConfigError it throws adds its problems to `problems` and gives
 * undefined, so one run reports every problem. Any other error is thrown on.
 */
export async function collectProblems<T>(problems: string[], load: () => Promise<T>): Promise<T | undefined> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof ConfigError) {
      problems.push(...err.problems);
      return undefined;
    }
    throw err;
  }
}
