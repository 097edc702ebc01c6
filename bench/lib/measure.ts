/** Small measuring helpers: CPU of this process, of its waited-for children and of another pid. */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux

/** user+system CPU milliseconds of this process (process.cpuUsage). */
export function selfCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

function statFields(pid: number | 'self'): string[] {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name may hold spaces: fields start after the last ')'
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** CPU ms of this process's terminated, waited-for children (cutime + cstime; 10 ms ticks). */
export function childrenCpuMs(): number {
  const fields = statFields('self');
  // after ')' : state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
  return (Number(fields[13]) + Number(fields[14])) * CLOCK_TICK_MS;
}

/** CPU ms (utime + stime) of another process, e.g. dockerd. */
export function pidCpuMs(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // nearest-rank
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? NaN;
}

export const median = (values: readonly number[]): number => percentile(values, 50);

export function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let num = 0;
  let den = 0;
  for (let index = 0; index < xs.length; index += 1) {
    const dx = (xs[index] ?? 0) - mx;
    num += dx * ((ys[index] ?? 0) - my);
    den += dx * dx;
  }
  return den === 0 ? 0 : num / den;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toFixed(digits);
}

/**
 * A full garbage collection, so a heap figure is what is retained, not what waits to be collected.
 * Uses `global.gc` when node runs with --expose-gc, else exposes it for this process through V8's
 * flags (documented in node:v8 setFlagsFromString; only for measurements, never in the agent).
 */
export function collectGarbage(): void {
  let gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
