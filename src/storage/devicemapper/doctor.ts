/**
 * doctor for devicemapper: pool configured, udev sync, deferred removal, live-restore, whether
 * grows can be held and which grown devices are not persistent yet, pool health, LVM autoextend,
 * binaries.
 */
import { type ToolName } from '../../exec/runner.js';
import type { DoctorCheck } from '../../contracts/doctor-check.js';
import { DM_HOLD_FIX, growPersistenceProblem, pendingPersistenceAdvice } from '../../policy/persistence.js';
import { devicePersistence, growPersistenceFacts, kernelHolds } from './persistence.js';
import { SECTOR_BYTES, parseLvmConfigValue, type DockerDmDriverStatus } from './parse.js';
import { errorMessage } from '../../util/errors.js';
import { type DmContext } from './context.js';
import { type KernelSnapshot, type PoolContext } from './snapshot.js';
import { dockerSizeOf } from './holds.js';

export function createDoctor(
  ctx: DmContext,
  kernel: KernelSnapshot,
): { doctor: () => Promise<DoctorCheck[]> } {
  const { deps, runner, grown, driverStatus, binaryPresent } = ctx;
  const { snapshot, poolContext } = kernel;

  /**
   * doctor: whether grows can be made persistent on this host, and every grown device dockerd does
   * not cache at its grown size yet (read only: asks dockerd and reads the kernel's holds).
   */
  async function persistenceChecks(): Promise<DoctorCheck[]> {
    const problem = growPersistenceProblem(growPersistenceFacts(deps.dockerInfo));
    const checks: DoctorCheck[] = [
      {
        name: 'devicemapper grows can be held',
        ok: problem === null,
        severity: 'warn',
        detail:
          problem ??
          'deferred removal and deletion on: a kernel hold (a read-only 4 KiB loop device on the thin device) keeps each grown device until dockerd caches its size',
        ...(problem === null ? {} : { fix: DM_HOLD_FIX }),
      },
    ];
    try {
      const holds = kernelHolds(await snapshot(false));
      const lines: string[] = [];
      let unheld = 0;
      for (const record of grown.all()) {
        const current = await deps.docker.inspectContainer(record.containerId);
        if (!current) continue;
        const state = devicePersistence({
          grownBytes: record.sizeSectors * SECTOR_BYTES,
          dockerSizeBytes: dockerSizeOf(current),
          held: holds.has(record.hash),
        });
        if (state === 'persistent') continue;
        if (state === 'unheld') unheld += 1;
        lines.push(
          `${current.name} (${record.deviceName}, grown to ${record.sizeSectors * SECTOR_BYTES} bytes, dockerd has ${dockerSizeOf(current) ?? 'unknown'}): ${pendingPersistenceAdvice(state)}`,
        );
      }
      checks.push({
        name: 'grown devices persistent',
        ok: lines.length === 0,
        severity: unheld > 0 ? 'error' : 'warn',
        detail: lines.length === 0 ? 'dockerd caches every grown size' : lines.join('; '),
        ...(lines.length === 0
          ? {}
          : {
              fix: 'restart dockerd (with "live-restore": true running containers keep running): it then reads the patched metadata files, and the agent releases its holds at its next pass',
            }),
      });
    } catch (error) {
      checks.push({
        name: 'grown devices persistent',
        ok: false,
        severity: 'warn',
        detail: `could not check: ${errorMessage(error)}`,
      });
    }
    return checks;
  }

  async function doctor(): Promise<DoctorCheck[]> {
    const checks: DoctorCheck[] = [];
    let docker: DockerDmDriverStatus | null = null;
    try {
      docker = driverStatus();
      checks.push({
        name: 'devicemapper pool configured',
        ok: true,
        severity: 'error',
        detail: `Pool Name ${docker.poolName}`,
      });
    } catch (error) {
      checks.push({
        name: 'devicemapper pool configured',
        ok: false,
        severity: 'error',
        detail: errorMessage(error),
      });
    }
    checks.push({
      name: 'udev sync supported',
      ok: docker?.udevSyncSupported === true,
      severity: 'error',
      detail: `Udev Sync Supported: ${docker?.udevSyncSupported ?? 'unknown'}`,
      fix: 'use a dynamically linked dockerd built with udev sync (distribution packages are)',
    });
    checks.push({
      name: 'deferred removal enabled',
      ok: docker?.deferredRemovalEnabled === true,
      severity: 'warn',
      detail: `Deferred Removal Enabled: ${docker?.deferredRemovalEnabled ?? 'unknown'}`,
      fix: 'add "dm.use_deferred_removal=true" to storage-opts in /etc/docker/daemon.json',
    });
    checks.push({
      name: 'live-restore',
      ok: deps.dockerInfo.liveRestoreEnabled,
      severity: 'warn',
      detail: deps.dockerInfo.liveRestoreEnabled
        ? 'live-restore on: dockerd can be restarted to reload grown sizes without stopping containers'
        : 'live-restore off: a dockerd restart (needed after `docker restart` of a grown container) stops containers',
      fix: 'set "live-restore": true in /etc/docker/daemon.json',
    });
    checks.push(...(await persistenceChecks()));
    const tools: ToolName[] = ['dmsetup', 'xfs_growfs', 'resize2fs'];
    let pool: PoolContext | null = null;
    try {
      pool = poolContext(await snapshot(true));
      const status = pool.status;
      checks.push({
        name: 'pool healthy',
        ok: status !== null && status.mode === 'rw' && !status.needsCheck,
        severity: 'error',
        detail: `pool ${pool.name} (${pool.kind}) mode ${status?.mode ?? 'unknown'}${status?.needsCheck ? ', needs_check' : ''}`,
        fix:
          status?.needsCheck || status?.mode === 'fail'
            ? 'stop Docker, deactivate the pool and run thin_check / thin_repair (lvconvert --repair for LVM)'
            : pool.kind === 'thin-pool'
              ? 'free space in the pool or grow it by hand (docker-autogrow grows only LVM and loop-lvm pools)'
              : 'free space in the pool, or let the agent grow it (pool.grow.enabled: true in the config; lvextend for direct-lvm, the loop file for loop-lvm)',
      });
    } catch (error) {
      checks.push({ name: 'pool healthy', ok: false, severity: 'error', detail: errorMessage(error) });
    }
    if (pool?.kind === 'thin-pool-lvm') {
      tools.push('lvs', 'vgs', 'lvextend', 'lvm');
      try {
        const output = (
          await runner.run({
            tool: 'lvm',
            args: ['config', '--typeconfig', 'full', 'activation/thin_pool_autoextend_threshold'],
            timeoutMs: deps.commandTimeoutMs,
          })
        ).stdout;
        const threshold = parseLvmConfigValue(output, 'thin_pool_autoextend_threshold');
        checks.push({
          name: 'LVM thin pool autoextend',
          ok: true,
          severity: 'warn',
          detail:
            threshold === '100'
              ? 'autoextend off (threshold 100): docker-autogrow grows the pool'
              : `autoextend at ${threshold}% (dmeventd also grows the pool)`,
        });
      } catch (error) {
        checks.push({
          name: 'LVM thin pool autoextend',
          ok: false,
          severity: 'warn',
          detail: errorMessage(error),
        });
      }
    }
    if (pool?.kind === 'thin-pool-loop') tools.push('losetup', 'truncate');
    for (const tool of tools) {
      const present = binaryPresent(tool);
      checks.push({
        name: `${tool} present`,
        ok: present,
        severity: 'error',
        detail: present ? `${tool} found` : `${tool} not found`,
        fix: present
          ? undefined
          : `install ${tool} (or set binaries.${tool} in the config to its absolute path)`,
      });
    }
    return checks;
  }

  return { doctor };
}
