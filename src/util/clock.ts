/**
 * The one clock and timer abstraction of the agent: the reconcile loop, the fill guard, the event
 * stream's reconnects and the systemd watchdog all schedule through {@link Timers} and read time
 * through {@link Clock}, so tests drive every schedule the same way. {@link sleepMs} is the one
 * plain wait (lock polling).
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface Clock {
  /** Milliseconds since the epoch. */
  nowMs(): number;
}

/** Timer functions (injectable so tests can drive a schedule; defaults to the globals). */
export interface Timers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

export const realTimers: Timers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Lets a real timer not keep the process alive (a no-op for fake handles). */
export function unrefTimer(handle: unknown): void {
  (handle as { unref?: () => void } | null)?.unref?.();
}

/** Resolves after `ms` milliseconds of real time (polling a lock; not for schedules tests drive). */
export function sleepMs(ms: number): Promise<void> {
  return delay(ms);
}
