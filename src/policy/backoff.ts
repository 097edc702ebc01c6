/**
 * Failure backoff: after the n-th consecutive failed grow of a container, no automatic grow for
 * initial x 2^(n-1), capped at max. Manual grows (`grow` command) are not held by it.
 */
export interface BackoffSettings {
  initial: number;
  max: number;
}

/** Delay after `consecutiveFailures` (>= 1) failures, in ms. */
export function backoffDelayMs(consecutiveFailures: number, settings: BackoffSettings): number {
  if (consecutiveFailures <= 0) return 0;
  // 2^30 already exceeds any sane cap; bounding the exponent keeps the arithmetic finite.
  const exponent = Math.min(consecutiveFailures - 1, 30);
  return Math.min(settings.max, settings.initial * 2 ** exponent);
}
