/**
 * Fill-rate estimation from recent usage samples. Two slopes are measured and the larger one wins:
 * the slope across the whole window (steady fills) and the slope over the most recent stretch of at
 * least {@link RECENT_SPAN_MS} (a burst that just started; the window slope would dilute it by the
 * idle samples before it). Erring high only means growing a little earlier; erring low loses the
 * race against a fast writer. A shrinking usage (files deleted) gives a rate of 0, never negative.
 */
import type { UsageSample } from './types.js';

/** The recent slope is measured over at least this span, so two samples a few ms apart (an event pass
 * right after a scheduled one) cannot produce an absurd rate. */
export const RECENT_SPAN_MS = 900;

export interface FillRate {
  /** Bytes per second, >= 0; null when fewer than two usable samples exist. */
  bytesPerSecond: number | null;
  /** Samples inside the window that were used. */
  sampleCount: number;
}

function slopeBytesPerSecond(older: UsageSample, newer: UsageSample): number {
  const elapsedMs = newer.atMs - older.atMs;
  if (elapsedMs <= 0) return 0;
  return ((newer.usedBytes - older.usedBytes) * 1000) / elapsedMs;
}

/** Estimates how fast usage grows, from samples (any order) within `windowMs` before `nowMs`. */
export function estimateFillRate(samples: readonly UsageSample[], nowMs: number, windowMs: number): FillRate {
  const inWindow = samples
    .filter((sample) => sample.atMs <= nowMs && sample.atMs >= nowMs - windowMs)
    .slice()
    .sort((a, b) => a.atMs - b.atMs);
  if (inWindow.length < 2) return { bytesPerSecond: null, sampleCount: inWindow.length };
  const oldest = inWindow[0]!;
  const newest = inWindow[inWindow.length - 1]!;
  if (newest.atMs - oldest.atMs <= 0) return { bytesPerSecond: null, sampleCount: inWindow.length };
  const windowRate = slopeBytesPerSecond(oldest, newest);
  let recentStart: UsageSample = oldest;
  for (let index = inWindow.length - 2; index >= 0; index -= 1) {
    const candidate = inWindow[index]!;
    if (newest.atMs - candidate.atMs >= RECENT_SPAN_MS) {
      recentStart = candidate;
      break;
    }
  }
  const recentRate = slopeBytesPerSecond(recentStart, newest);
  return { bytesPerSecond: Math.max(0, windowRate, recentRate), sampleCount: inWindow.length };
}

/** Seconds until `usedBytes` reaches `sizeBytes` at `bytesPerSecond`; null when not filling. */
export function timeToFullSeconds(
  usedBytes: number,
  sizeBytes: number,
  bytesPerSecond: number | null,
): number | null {
  if (usedBytes >= sizeBytes) return 0;
  if (bytesPerSecond === null || bytesPerSecond <= 0) return null;
  return (sizeBytes - usedBytes) / bytesPerSecond;
}
