// Time units, named. JWT claims and config durations are in seconds; Date.now(),
// timers and key-source clocks are in milliseconds. Converting through these helpers
// (rather than bare `* 1000` / `/ 1000`) keeps the unit of every value readable.

/** Seconds since the Unix epoch (a JWT NumericDate); may carry a fraction. */
export type EpochSeconds = number;
/** Milliseconds since the Unix epoch (Date.now()). */
export type EpochMs = number;
/** A duration in seconds. */
export type Seconds = number;
/** A duration in milliseconds. */
export type Milliseconds = number;

const MS_PER_SECOND = 1000;

/** The current time in epoch seconds, with the fraction (not rounded). */
export function nowSeconds(): EpochSeconds {
  return Date.now() / MS_PER_SECOND;
}

/** Whole epoch seconds, as JWT iat/exp are written. */
export function wholeSeconds(t: EpochSeconds): EpochSeconds {
  return Math.floor(t);
}

/** Seconds (a duration, or an epoch time) in milliseconds. */
export function secondsToMs(s: Seconds | EpochSeconds): Milliseconds | EpochMs {
  return s * MS_PER_SECOND;
}

/** Milliseconds (a duration, or an epoch time) in seconds, with the fraction. */
export function msToSeconds(ms: Milliseconds | EpochMs): Seconds | EpochSeconds {
  return ms / MS_PER_SECOND;
}

/**
 * The one source of the current time. Components take a Clock (defaulting to
 * `systemClock`) instead of calling Date.now(), so tests can move time without waiting.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  nowMs(): EpochMs;
  /** Seconds since the Unix epoch, with the fraction. */
  nowSeconds(): EpochSeconds;
}

/** The wall clock. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  nowSeconds: () => Date.now() / MS_PER_SECOND,
};

/** A clock that stands still until moved: for tests. */
export class ManualClock implements Clock {
  constructor(private ms: EpochMs = Date.now()) {}
  nowMs(): EpochMs {
    return this.ms;
  }
  nowSeconds(): EpochSeconds {
    return this.ms / MS_PER_SECOND;
  }
  /** Moves the clock forward by `ms` milliseconds. */
  advanceMs(ms: Milliseconds): void {
    this.ms += ms;
  }
  set(ms: EpochMs): void {
    this.ms = ms;
  }
}
