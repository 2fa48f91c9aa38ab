// The one capturing logger every test uses: production logger options (redaction, level
// labels) with each line parsed into `lines` and the raw output kept for "never logs X" checks.
import { createLogger, type Logger } from '../../src/observability/logger.js';

export interface CapturedLog {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface CapturedLogger {
  readonly logger: Logger;
  readonly lines: CapturedLog[];
  /** The raw output, for "never logs X" checks. */
  readonly text: () => string;
}

export function captureLogger(level = 'debug'): CapturedLogger {
  const raw: string[] = [];
  const lines: CapturedLog[] = [];
  const logger = createLogger(level, {
    write(s: string) {
      raw.push(s);
      lines.push(JSON.parse(s) as CapturedLog);
    },
  });
  return { logger, lines, text: () => raw.join('') };
}
