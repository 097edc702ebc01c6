/**
 * The fill guard's arithmetic, pure: which containers need a look between two regular passes,
 * how often, and when a look must hand a container to the policy at once.
 *
 * Why a guard exists: a regular pass runs every `interval` (1 s by default), but a writer into the
 * page cache fills a small limit much faster (measured on this project's host: `dd bs=1M` at
 * 2.8 GiB/s, so a 512 MiB container goes from empty to full in ~180 ms, between two passes). A
 * container is therefore re-read, without starting any process, often enough that a writer at the
 * host's peak rate cannot fill it between two looks; when a look shows it would fill before the
 * next regular pass, a pass for that container runs at once and the ordinary policy decides.
 */
import type { SkipReason } from './types.js';

export interface GuardSettings {
  /** The fastest a container on this host can write (config guard.peakWriteRate). */
  peakWriteBytesPerSecond: number;
  /** Never re-read one container more often than this. */
  minIntervalMs: number;
  /** The regular pass interval: containers that cannot fill within it are left to the passes. */
  passIntervalMs: number;
}

/** One process-free reading of a container. */
export interface GuardSample {
  atMs: number;
  usedBytes: number;
  sizeBytes: number;
}

/**
 * Decisions after which a faster look cannot change the outcome: the pass would skip the
 * container again for a reason that does not move within milliseconds (the pool's free space
 * above its reserve included). Such containers are not guarded until a regular pass decides
 * otherwise.
 */
export const UNGUARDED_SKIPS: ReadonlySet<SkipReason> = new Set<SkipReason>([
  'disabled',
  'no-limit',
  'usage-unknown',
  'at-max-size',
  'pool-unhealthy',
  'pool-reserve',
  'pool-overcommit',
  'backoff',
  'dry-run',
]);

/**
 * How long until the next look at a container: half the time a writer at the peak rate needs to
 * fill what is left (the other half is for the reaction: a pass and a grow), never under
 * `minIntervalMs`. Null when even that half is longer than a pass interval: the regular passes
 * are soon enough.
 */
export function guardPeriodMs(usedBytes: number, sizeBytes: number, settings: GuardSettings): number | null {
  if (settings.peakWriteBytesPerSecond <= 0) return null;
  const headroomBytes = Math.max(0, sizeBytes - usedBytes);
  const fillMs = (headroomBytes / settings.peakWriteBytesPerSecond) * 1000;
  const periodMs = fillMs / 2;
  if (periodMs >= settings.passIntervalMs) return null;
  return Math.max(settings.minIntervalMs, Math.floor(periodMs));
}

export type GuardVerdict =
  | { urgent: false }
  | {
      urgent: true;
      /** 'threshold': at or over the policy threshold now; 'filling': would be full before the next pass. */
      reason: 'threshold' | 'filling';
      /** Between the two looks; null for a threshold verdict on the first look. */
      bytesPerSecond: number | null;
      /** At that rate; null when not measured. */
      timeToFullMs: number | null;
    };

/**
 * Whether a look must hand the container to the policy now: it is at or above its threshold, or,
 * at the rate since the previous look, it would be full before the next regular pass could see
 * it (`untilNextPassMs`) plus one more look.
 */
export function guardVerdict(
  previous: GuardSample | null,
  current: GuardSample,
  thresholdRatio: number,
  untilNextPassMs: number,
  periodMs: number,
): GuardVerdict {
  let bytesPerSecond: number | null = null;
  let timeToFullMs: number | null = null;
  // A changed limit (a grow, a restart) makes the two looks incomparable as a fill.
  if (previous && previous.sizeBytes === current.sizeBytes && current.atMs > previous.atMs) {
    bytesPerSecond = Math.max(
      0,
      ((current.usedBytes - previous.usedBytes) * 1000) / (current.atMs - previous.atMs),
    );
    if (bytesPerSecond > 0) {
      timeToFullMs = (Math.max(0, current.sizeBytes - current.usedBytes) / bytesPerSecond) * 1000;
    }
  }
  if (current.usedBytes >= thresholdRatio * current.sizeBytes) {
    return { urgent: true, reason: 'threshold', bytesPerSecond, timeToFullMs };
  }
  if (timeToFullMs !== null && timeToFullMs <= untilNextPassMs + periodMs) {
    return { urgent: true, reason: 'filling', bytesPerSecond, timeToFullMs };
  }
  return { urgent: false };
}
