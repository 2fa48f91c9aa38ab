// Fake timers for key sources that still fetch over a real socket: time only moves when a
// test advances it, and every step lets a fetch that a fired timer started finish (real
// I/O) before the next step, so refresh, backoff and staleness run in microseconds.
import { vi } from 'vitest';

/** Fakes setTimeout/clearTimeout and Date; the event loop, setImmediate and sockets stay real. */
export function useFakeClock(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
}

/** A key source's fetch in flight (the one private the tests read: it is what "the refresh finished" means). */
function inFlight(source: object): Promise<void> | undefined {
  return (source as { inFlight?: Promise<void> }).inFlight;
}

/** Advances fake time by `ms` in `step` increments, waiting for each fetch the fired timers started. */
export async function advance(source: object, ms: number, step = 10): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    await vi.advanceTimersByTimeAsync(Math.min(step, ms - done));
    await inFlight(source);
  }
}
