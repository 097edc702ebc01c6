/**
 * Metrics of the reclaim ladder (src/reclaim/reclaimer.ts), as a table (src/metrics/define.ts),
 * registered on the agent's registry by createMetrics(). Every series exists from the start
 * (at 0), so rate() and the "cannot grow and cannot reclaim" alert work before the first run.
 */
import { defineMetrics, type Registry } from './define.js';
import { RECLAIM_RESULTS, RECLAIM_TRIGGERS, type ReclaimReport } from '../reclaim/ladder.js';
import { RECLAIM_KINDS } from '../contracts/reclaim.js';

export interface ReclaimMetrics {
  /** Count one finished ladder run (dry runs count as `planned` and free nothing). */
  applyReport(report: ReclaimReport): void;
  /** 1 while the data filesystem is over the reclaim threshold, cannot grow, and the ladder did not help. */
  setExhausted(exhausted: boolean): void;
}

export function createReclaimMetrics(registry: Registry): ReclaimMetrics {
  const m = defineMetrics(registry, {
    runs: {
      type: 'counter',
      name: 'reclaim_runs_total',
      help: 'Reclaim ladder runs by trigger (threshold, schedule, manual) and result (freed, nothing, planned = dry run, failed).',
      labels: ['trigger', 'result'],
    },
    freed: {
      type: 'counter',
      name: 'reclaim_freed_bytes_total',
      help: 'Bytes the data filesystem got back across each rung (statfs before - after), by rung kind.',
      labels: ['kind'],
    },
    removed: {
      type: 'counter',
      name: 'reclaim_removed_items_total',
      help: 'Items removed by the reclaim ladder (images, containers, cache records, volumes), by rung kind.',
      labels: ['kind'],
    },
    refused: {
      type: 'counter',
      name: 'reclaim_refused_items_total',
      help: 'Removals Docker refused (in use, conflict), by rung kind.',
      labels: ['kind'],
    },
    exhausted: {
      type: 'gauge',
      name: 'reclaim_exhausted',
      help: '1 while the data filesystem is at or over reclaim.threshold, cannot grow, and the last ladder run left it there.',
    },
    lastRun: {
      type: 'gauge',
      name: 'reclaim_last_run_timestamp_seconds',
      help: 'Unix time of the last reclaim ladder run that was not a dry run (0: none yet).',
    },
  });
  for (const trigger of RECLAIM_TRIGGERS)
    for (const result of RECLAIM_RESULTS) m.runs.inc({ trigger, result }, 0);
  for (const kind of RECLAIM_KINDS) {
    m.freed.inc({ kind }, 0);
    m.removed.inc({ kind }, 0);
    m.refused.inc({ kind }, 0);
  }
  m.exhausted.set(0);
  m.lastRun.set(0);
  return {
    applyReport(report) {
      m.runs.inc({ trigger: report.trigger, result: report.result });
      if (report.dryRun) return;
      m.lastRun.set((report.startedAtMs + report.durationMs) / 1000);
      for (const rung of report.rungs) {
        m.freed.inc({ kind: rung.kind }, rung.freedBytes ?? 0);
        m.removed.inc({ kind: rung.kind }, rung.items.length);
        m.refused.inc({ kind: rung.kind }, rung.failures.length);
      }
    },
    setExhausted(exhausted) {
      m.exhausted.set(exhausted ? 1 : 0);
    },
  };
}
