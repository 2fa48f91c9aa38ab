import { systemClock, type Clock } from '../core/time.js';

/**
 * Per-reason rate limit for per-decision log lines. A flood of bad tokens would
 * otherwise cost a log line (serialisation, redaction, a write) per request and
 * bury everything else in the log. The first `perSecond` lines of each reason in
 * each one-second window are written; the rest are counted (the caller's
 * `onSuppressed`, e.g. authz_log_suppressed_total) and summed up in one line
 * when the window closes, so nothing disappears without a trace.
 */
export class LogSampler {
  private windowStart = 0;
  private readonly counts = new Map<string, number>();
  private suppressed: Record<string, number> | undefined;

  constructor(
    /** Lines per reason per second; 0 = no limit. */
    private readonly perSecond: number,
    private readonly onSuppressed: (reason: string) => void,
    /** One line summing up what the closed window suppressed, by reason. */
    private readonly onWindowSummary: (suppressed: Record<string, number>) => void,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Whether this line is written; when not, it is counted. */
  take(reason: string): boolean {
    if (this.perSecond <= 0) return true;
    const now = this.clock.nowMs();
    if (now - this.windowStart >= 1000) this.roll(now);
    const n = (this.counts.get(reason) ?? 0) + 1;
    this.counts.set(reason, n);
    if (n <= this.perSecond) return true;
    if (!this.suppressed) {
      this.suppressed = Object.create(null) as Record<string, number>;
      // The summary is due when the window closes, even if no line follows.
      const start = this.windowStart;
      setTimeout(
        () => {
          if (this.windowStart === start) this.roll(this.clock.nowMs());
        },
        1000 - (now - start),
      ).unref();
    }
    this.suppressed[reason] = (this.suppressed[reason] ?? 0) + 1;
    this.onSuppressed(reason);
    return false;
  }

  /** Closes the current window (its summary line, if anything was suppressed). */
  flush(): void {
    this.roll(this.clock.nowMs());
  }

  private roll(now: number): void {
    this.windowStart = now;
    this.counts.clear();
    const s = this.suppressed;
    if (s) {
      this.suppressed = undefined;
      this.onWindowSummary(s);
    }
  }
}
