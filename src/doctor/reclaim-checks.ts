/**
 * `doctor` checks of the reclaim ladder: is it enabled where the data filesystem cannot grow, what
 * it would remove now (one dry run: Docker listings only), and whether its schedules are set.
 * {@link reclaimChecks} is pure over the configuration, the data-filesystem decision and the dry run.
 */
import type { Config } from '../config/schema.js';
import type { DoctorCheck } from '../contracts/doctor-check.js';
import { silentLogger } from '../log/logger.js';
import type { ReclaimReport } from '../reclaim/ladder.js';
import { Reclaimer } from '../reclaim/reclaimer.js';
import type { ReclaimDockerApi } from '../contracts/reclaim.js';
import { errorMessage } from '../util/errors.js';
import { formatBytes } from '../util/units.js';

export interface ReclaimDoctorFacts {
  /** Why the data filesystem cannot grow now (a reason code), null when it can or is not looked at. */
  cannotGrowReason: string | null;
  /** One dry run of the configured ladder, or the error it ended with. */
  plan: { report: ReclaimReport } | { failed: string };
}

export function reclaimChecks(settings: Config['reclaim'], facts: ReclaimDoctorFacts): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  const ladder = settings.ladder.map((rung) => rung.kind).join(' -> ');
  if (!settings.enabled) {
    checks.push({
      name: 'reclaim when nothing can grow',
      ok: facts.cannotGrowReason === null,
      severity: 'warn',
      detail:
        facts.cannotGrowReason === null
          ? 'reclaim is disabled (opt-in)'
          : `the data filesystem cannot grow (${facts.cannotGrowReason}) and reclaim is disabled`,
      ...(facts.cannotGrowReason === null
        ? {}
        : {
            fix: 'set reclaim.enabled: true (and review reclaim.ladder: `docker-autogrow reclaim --dry-run` lists what it would remove)',
          }),
    });
  } else {
    const schedules = settings.schedules.length > 0 ? `; schedules ${settings.schedules.join(', ')}` : '';
    checks.push({
      name: 'reclaim when nothing can grow',
      ok: true,
      severity: 'warn',
      detail: `enabled at ${(settings.threshold * 100).toFixed(0)}% used: ${ladder}${schedules}`,
    });
  }
  if ('failed' in facts.plan) {
    checks.push({
      name: 'reclaim ladder can read Docker',
      ok: false,
      severity: 'warn',
      detail: `a dry run of the ladder failed: ${facts.plan.failed}`,
      fix: 'make the Docker API reachable (see the Docker checks above); the ladder lists images, containers and build cache',
    });
  } else {
    const report = facts.plan.report;
    const rungs = report.rungs
      .map((rung) => `${rung.kind} ${rung.items.length} (${formatBytes(rung.itemBytes)})`)
      .join(', ');
    checks.push({
      name: 'reclaim ladder can read Docker',
      ok: report.error === null,
      severity: 'warn',
      detail:
        report.error === null
          ? `would remove now: ${rungs || 'nothing'} (Docker's sizes; shared layers count in each image)`
          : `a dry run of the ladder failed: ${report.error}`,
    });
  }
  return checks;
}

/** One dry run of the configured ladder, turned into checks. */
export async function runReclaimChecks(options: {
  config: Config;
  docker: ReclaimDockerApi & { info(): Promise<{ dockerRootDir: string }> };
  cannotGrowReason: string | null;
}): Promise<DoctorCheck[]> {
  let plan: ReclaimDoctorFacts['plan'];
  try {
    const dataRoot = (await options.docker.info()).dockerRootDir;
    const reclaimer = new Reclaimer({
      settings: options.config.reclaim,
      docker: options.docker,
      dataRoot,
      dryRun: true,
      logger: silentLogger(),
      clock: { nowMs: () => Date.now() },
    });
    plan = { report: await reclaimer.run('manual', 'doctor', { dryRun: true }) };
  } catch (error) {
    plan = { failed: errorMessage(error) };
  }
  return reclaimChecks(options.config.reclaim, { cannotGrowReason: options.cannotGrowReason, plan });
}
