/** The figures of one soak run as the lines printed at its end (and pasted into docs/reliability.md). */
import { INVARIANTS } from './invariants.js';
import type { SoakResult } from './driver.js';

function pairs(record: Record<string, number>): string {
  const entries = Object.entries(record).filter(([, count]) => count > 0);
  return entries.length === 0 ? 'none' : entries.map(([key, count]) => `${key} ${count}`).join(', ');
}

export function formatSoakResult(result: SoakResult): string {
  const journal = result.grows.journal;
  return [
    `soak seed ${result.seed} on ${result.backend}${result.agent ? '' : ' (CONTROL: no agent)'}: ${result.durationSeconds} s, ${result.opsRun}/${result.opsPlanned} operations`,
    `  operations: ${pairs(result.opsByKind)}`,
    `  operation errors: ${result.opErrors}${result.opErrors ? ` (${pairs(result.opErrorsByKind)})` : ''}`,
    `  faults: ${pairs(result.faults)}; event-cut connections cut: ${result.eventCutConnections}`,
    `  containers: ${result.containersCreated} created, ${result.containersStarted} starts, at most ${result.maxContainersAlive} alive`,
    `  writes: ${result.writes.total} (${result.writes.mib} MiB written, ${result.writes.interrupted} interrupted by a stop/rm/restart, ${result.writes.errors} errors; not violations: ${pairs(result.writes.errorsExcused)})`,
    `  grows: ${result.grows.seenInQgroups} seen in the limits; journal ${journal ? `${journal.growsSucceeded} succeeded, ${journal.growsFailed} failed, ${journal.growsRecovered} recovered, ${journal.growsContainerGone} container gone, ${journal.records} records` : 'none'}; CLI grow results: ${pairs(result.grows.cliGrows)}`,
    ...(Object.keys(result.rigFigures).length > 0 ? [`  rig: ${pairs(result.rigFigures)}`] : []),
    `  agent: ${result.agentIncarnations} incarnations, stopped by the soak for ${result.agentDownSeconds} s (longest SIGTERM stop ${result.longestAgentStopMs} ms, ${result.agentWarnOrErrorLines} warn/error log lines), RSS at most ${result.resources.maxRssMiB} MiB, fds at most ${result.resources.maxFds}; /healthz ${result.healthProbes.total} probes; ${result.metricCheckpoints} metric checkpoints`,
    `  violations: ${result.violationsTotal} (${INVARIANTS.map((name) => `${name} ${result.violations[name]}`).join(', ')})`,
    ...result.violationSamples
      .slice(0, 10)
      .map((violation) => `    - ${violation.invariant}: ${violation.detail}`),
    `  load average: start ${result.loadAverage.start.join(' ')}, end ${result.loadAverage.end.join(' ')}`,
    `  replay: ${result.replay}`,
    `  logs: ${result.logDir}`,
  ].join('\n');
}
