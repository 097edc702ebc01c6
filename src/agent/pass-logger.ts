/**
 * The pass logger: one 'pass' line per pass, at info only when it is news (see the reconciler's
 * header for the fields), 'threshold crossed' once per crossing and 'label ignored' once per
 * container and text: the log de-duplication a steady host at 1 pass/s needs to log nothing.
 */
import type { ContainerInfo } from '../docker/model.js';
import type { Logger } from '../log/logger.js';
import type { ContainerPlan } from '../policy/decide.js';
import type { PoolDecision, SkipReason } from '../policy/types.js';
import type { PassReport } from '../report/pass-report.js';
import type { Observation } from '../storage/types.js';

export class PassLogger {
  private readonly aboveThreshold = new Set<string>();
  private readonly warnedLabels = new Map<string, Set<string>>();
  private previousPassSignature = '';

  constructor(private readonly logger: Logger) {}

  /** A container is gone: its crossings and warnings are news again if it comes back. */
  forget(containerId: string): void {
    this.aboveThreshold.delete(containerId);
    this.warnedLabels.delete(containerId);
  }

  /** Logs threshold crossings and ignored labels, once each (per crossing, per container and text). */
  noteThresholdsAndWarnings(
    containers: readonly ContainerInfo[],
    plans: readonly ContainerPlan[],
    observation: Observation,
  ): void {
    const logger = this.logger;
    const byId = new Map(containers.map((container) => [container.id, container]));
    for (const plan of plans) {
      const container = byId.get(plan.containerId);
      if (!container) continue;
      const usage = observation.containers.get(plan.containerId);
      if (plan.aboveThreshold && usage) {
        if (!this.aboveThreshold.has(plan.containerId)) {
          this.aboveThreshold.add(plan.containerId);
          logger.info(
            {
              containerId: plan.containerId,
              name: container.name,
              usedBytes: usage.usedBytes,
              sizeBytes: usage.sizeBytes,
              thresholdRatio: plan.settings.threshold,
            },
            'threshold crossed',
          );
        }
      } else if (usage && usage.usedBytes !== null) {
        this.aboveThreshold.delete(plan.containerId);
      }
      let warned = this.warnedLabels.get(plan.containerId);
      for (const warning of plan.labelWarnings) {
        if (warned?.has(warning)) continue;
        if (!warned) {
          warned = new Set();
          this.warnedLabels.set(plan.containerId, warned);
        }
        warned.add(warning);
        logger.warn({ containerId: plan.containerId, name: container.name, warning }, 'label ignored');
      }
    }
  }

  /** The 'pass' line: info when something happened or the standing state changed, else debug. */
  logPass(report: PassReport, pool: PoolDecision): void {
    let grown = 0;
    let failed = 0;
    let planned = 0;
    let noop = 0;
    const skipped: Partial<Record<SkipReason, number>> = {};
    for (const container of report.containers) {
      if (container.outcome?.kind === 'grown') grown += 1;
      else if (container.outcome?.kind === 'noop') noop += 1;
      else if (container.outcome?.kind === 'failed') failed += 1;
      else if (container.outcome?.kind === 'planned') planned += 1;
      if (container.decision.kind === 'skip') {
        skipped[container.decision.reason] = (skipped[container.decision.reason] ?? 0) + 1;
      }
    }
    // Acting is always news; standing states (a plan repeated every second in dry-run mode, a pool
    // that needs growth it may not get, a persistent probe error) are news only when they change.
    // A pass over some containers (the fill guard's) only compares with whole-host passes
    // when it acted: its skip counts cover a subset, so "changed" would be noise.
    const partial = report.onlyContainerIds !== undefined;
    const signature = JSON.stringify([skipped, planned, report.poolAction?.kind ?? null, report.errors]);
    const eventful =
      grown + noop + failed > 0 ||
      report.poolAction?.kind === 'grown' ||
      report.poolAction?.kind === 'failed' ||
      (!partial && signature !== this.previousPassSignature);
    if (!partial) this.previousPassSignature = signature;
    const fields = {
      durationMs: report.durationMs,
      containers: report.containers.length,
      grown,
      noop,
      failed,
      planned,
      skipped,
      pool: pool.kind,
      dryRun: report.dryRun,
      ...(report.errors.length > 0 ? { errors: report.errors } : {}),
    };
    if (eventful) this.logger.info(fields, 'pass');
    else this.logger.debug(fields, 'pass');
  }
}
