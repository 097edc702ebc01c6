/**
 * Grow sizing, in whole bytes. The target is the current size plus a step (a share of the size or
 * an absolute size), clamped to [minStep, maxStep], widened to cover the predicted fill over the
 * horizon, rounded UP to a whole MiB (device-mapper sectors and quota granularity) but never past
 * maxSize, and never below the current size.
 */
import type { PolicySettings, Step } from '../config/schema.js';

export const MIB = 1024 * 1024;

export function roundUpToMiB(bytes: number): number {
  return Math.ceil(bytes / MIB) * MIB;
}

export function roundDownToMiB(bytes: number): number {
  return Math.floor(bytes / MIB) * MIB;
}

/** The configured step for a container of `sizeBytes`, before clamping. */
export function stepBytes(step: Step, sizeBytes: number): number {
  return step.kind === 'ratio' ? Math.ceil(sizeBytes * step.ratio) : step.bytes;
}

export interface TargetInput {
  sizeBytes: number;
  usedBytes: number;
  settings: PolicySettings;
  /** Fill rate when known and prediction is on; null otherwise. */
  bytesPerSecond: number | null;
  horizonMs: number;
}

export interface Target {
  toBytes: number;
  /** Which bound decided the size, for the `why` sentence. */
  limitedBy: 'step' | 'min-step' | 'predicted-fill' | 'below-threshold' | 'max-step' | 'max-size';
}

/**
 * The size to grow to (>= sizeBytes; equal only when sizeBytes >= maxSize). The step is the largest
 * of: the configured step, minStep, what brings today's usage back under the threshold, and (when
 * the fill rate is known) what covers the fill over the horizon (see below). maxStep then caps it,
 * and maxSize caps the result.
 */
export function computeTarget(input: TargetInput): Target {
  const { sizeBytes, usedBytes, settings } = input;
  if (sizeBytes >= settings.maxSize) return { toBytes: sizeBytes, limitedBy: 'max-size' };
  // A threshold of 0% is linted at load; guard the division anyway.
  const threshold = Math.max(settings.threshold, 0.01);
  let step = stepBytes(settings.step, sizeBytes);
  let limitedBy: Target['limitedBy'] = 'step';
  if (settings.minStep > step) {
    step = settings.minStep;
    limitedBy = 'min-step';
  }
  // +1 byte: after the grow, the trigger condition (>=) must be false on the same usage.
  const underThreshold = Math.floor(usedBytes / threshold) + 1 - sizeBytes;
  if (underThreshold > step) {
    step = underThreshold;
    limitedBy = 'below-threshold';
  }
  if (input.bytesPerSecond !== null && input.bytesPerSecond > 0) {
    const fillOverHorizon = Math.ceil((input.bytesPerSecond * input.horizonMs) / 1000);
    // Three requirements: the step covers rate x horizon; one horizon from now usage is still under
    // the threshold; and the container is not predicted full for two horizons. The last one spaces
    // grows of a sustained writer about one horizon apart (the cooldown override fires when time to
    // full drops under one horizon) instead of every few passes.
    const coverFill = Math.max(
      fillOverHorizon,
      Math.floor((usedBytes + fillOverHorizon) / threshold) + 1 - sizeBytes,
      usedBytes + 2 * fillOverHorizon - sizeBytes,
    );
    if (coverFill > step) {
      step = coverFill;
      limitedBy = 'predicted-fill';
    }
  }
  if (step > settings.maxStep) {
    step = settings.maxStep;
    limitedBy = 'max-step';
  }
  let toBytes = roundUpToMiB(sizeBytes + step);
  if (toBytes >= settings.maxSize) {
    toBytes = settings.maxSize;
    limitedBy = 'max-size';
  }
  return { toBytes: Math.max(toBytes, sizeBytes), limitedBy };
}
