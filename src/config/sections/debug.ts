import { isLoopbackHost } from '../../net/safe-fetch.js';
import { bool, section, strings, Type, type Static } from './kit.js';

// debug: the explain endpoint (POST /debug/explain on the HTTP listener), off by default.

export const DebugSchema = section(
  {
    explain: bool({
      description: 'POST /debug/explain on the HTTP listener: a decision with its trail (off: 404)',
      default: false,
    }),
    explain_public: bool({
      description:
        'allow debug.explain when server.http_address is not a loopback address (never on a public address by default)',
      default: false,
    }),
    redact_claims: Type.Optional(
      strings({ description: 'claims whose values an explanation masks', allowEmpty: true }),
    ),
  },
  { description: 'Debugging aids; nothing here is on unless set.', default: {} },
);

export type DebugConfig = Static<typeof DebugSchema>;

/** debug.explain on a listener that is not loopback needs debug.explain_public. */
export function checkDebug(debug: DebugConfig, httpAddress: string, problems: string[]): void {
  if (!debug.explain || debug.explain_public) return;
  const colon = httpAddress.lastIndexOf(':');
  const host = colon > 0 ? httpAddress.slice(0, colon) : httpAddress;
  if (!isLoopbackHost(host))
    problems.push(
      `debug.explain: server.http_address "${httpAddress}" is not a loopback address; set debug.explain_public: true to serve explanations there`,
    );
}
