import pino, { type Logger } from 'pino';

export type { Logger };

// Paths that could ever carry a credential. Code never logs tokens on purpose;
// this is the safety net (pino `redact`).
const REDACT = [
  'token',
  '*.token',
  'assertion',
  '*.assertion',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'client_secret',
  '*.client_secret',
  'refresh_token',
  '*.refresh_token',
  'access_token',
  '*.access_token',
  'secret',
  '*.secret',
  'key',
  '*.privateKey',
  '*.d',
  '*.k',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'envoy-jwt-authz' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
