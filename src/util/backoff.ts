/**
 * The one exponential backoff of the agent. After `failures` consecutive failures (>= 1) the wait is
 * initial x 2^(failures-1), capped at max; with `random` (full jitter) it is a uniform delay in
 * [0, that). Used by the grow failure backoff (no jitter: it is journaled and shown in status), the
 * pool grow backoff, the event stream's reconnects (full jitter spreads the reconnects of a fleet's
 * agents after a daemon restart) and the inventory's resync retries.
 */
export interface BackoffSchedule {
  initialMs: number;
  maxMs: number;
}

/** Milliseconds to wait after `failures` consecutive failures; 0 when there was none. */
export function backoffDelayMs(failures: number, schedule: BackoffSchedule, random?: () => number): number {
  if (!(failures >= 1)) return 0;
  // 2^30 already exceeds any sane cap; bounding the exponent keeps the arithmetic finite.
  const ceilingMs = Math.min(schedule.maxMs, schedule.initialMs * 2 ** Math.min(failures - 1, 30));
  if (!random) return ceilingMs;
  const fraction = Math.min(Math.max(random(), 0), 1);
  return Math.floor(ceilingMs * fraction);
}
