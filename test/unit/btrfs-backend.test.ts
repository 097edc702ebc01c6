/**
 * The btrfs backend with a strict scripted runner fed with real recorded btrfs-progs outputs, a
 * data root laid out like Docker's in a temp dir, and recorded sysfs counters. Fault injection:
 * the qgroup limit fails, the re-read shows no change, the quota file write fails.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DockerApi } from '../../src/docker/inventory-port.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { createBtrfsBackend, type BtrfsBackendOptions } from '../../src/storage/btrfs/index.js';
import { parseSubvolumeList } from '../../src/storage/btrfs/parse-subvolume-list.js';
import { LiveQgroupReader } from '../../src/storage/btrfs/sysfs.js';
import type { BackendDeps } from '../../src/storage/types.js';
import { ScriptedRunner } from '../support/scripted-runner.js';
import {
  FS_UUID,
  fakeHost,
  recorded,
  recordedContainerInfos,
  recordedContainers,
  recordedSysfs,
  removeFakeHosts,
} from './btrfs-fixtures.js';

const MiB = 1024 ** 2;
const ids = recordedContainers();
const { limited, unlimited } = recordedContainerInfos();
const limitedSubvolumeId =
  parseSubvolumeList(recorded('subvolume-list').stdout).find(
    (row) => row.path === `btrfs/subvolumes/${ids.limitedMountId}`,
  )?.subvolumeId ?? -1;

function ok(name: string) {
  const output = recorded(name);
  return { stdout: output.stdout, stderr: output.stderr, exitCode: output.exitCode };
}

const noDocker: DockerApi = {
  info: async () => {
    throw new Error('not used');
  },
  listContainerIds: async () => [],
  inspectContainer: async () => null,
  ping: async () => true,
};

function setup(
  options: { sysfs?: string; backend?: BtrfsBackendOptions; docker?: DockerApi; live?: boolean } = {},
) {
  const host = fakeHost({ sysfs: options.sysfs, limitedSubvolumeId });
  const runner = new ScriptedRunner();
  const deps: BackendDeps = {
    runner,
    docker: options.docker ?? noDocker,
    dockerInfo: {
      serverVersion: '20.10.24',
      apiVersion: '1.41',
      driver: 'btrfs',
      driverStatus: [],
      dockerRootDir: host.dataRoot,
      liveRestoreEnabled: false,
      containersRunning: 2,
    },
    logger: silentLogger(),
    stateDir: host.dataRoot,
    commandTimeoutMs: 5_000,
  };
  const backend = createBtrfsBackend(deps, {
    sysfsRoot: options.live === false ? null : host.sysfsRoot,
    checkSubvolumeRoot: async () => {},
    ...options.backend,
  });
  const show = ['qgroup', 'show', '--raw', '-re', host.dataRoot];
  const list = ['subvolume', 'list', host.dataRoot];
  const fsShow = ['filesystem', 'show', '--raw', host.dataRoot];
  const limit = (bytes: number) => [
    'qgroup',
    'limit',
    String(bytes),
    `0/${limitedSubvolumeId}`,
    host.dataRoot,
  ];
  return { host, runner, backend, show, list, fsShow, limit };
}

let runners: ScriptedRunner[] = [];
afterEach(() => {
  removeFakeHosts();
  for (const runner of runners) runner.assertDone();
  runners = [];
});
function track<T extends { runner: ScriptedRunner }>(value: T): T {
  runners.push(value.runner);
  return value;
}

describe('btrfs backend observe', () => {
  it('reads live usage from sysfs and limits from one qgroup show, in a fixed number of commands', async () => {
    const { runner, backend, show, list, fsShow } = track(setup({ sysfs: 'sysfs-qgroup-before-commit' }));
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show-before-commit'));
    runner.expect('btrfs', fsShow, ok('filesystem-show'));
    const first = await backend.observe([limited, unlimited], 1000);
    expect(first.errors).toEqual(new Map());
    const sysfs = recordedSysfs('sysfs-qgroup-before-commit');
    const live =
      Number(sysfs.get('referenced')) +
      Number(sysfs.get('rsv_data')) +
      Number(sysfs.get('rsv_meta_pertrans')) +
      Number(sysfs.get('rsv_meta_prealloc'));
    const usage = first.containers.get(limited.id);
    expect(usage).toMatchObject({ sizeBytes: 64 * MiB, usedBytes: live, driver: 'btrfs' });
    // the committed numbers lag: 40 MiB were written, qgroup show still says ~2 MiB
    expect(usage?.detail.committedReferencedBytes).toBeLessThan(4 * MiB);
    expect(usage?.usedBytes).toBeGreaterThan(40 * MiB);
    expect(usage?.detail).toMatchObject({
      qgroup: `0/${limitedSubvolumeId}`,
      mountId: ids.limitedMountId,
      usageSource: 'sysfs',
    });
    const free = first.containers.get(unlimited.id);
    expect(free?.sizeBytes).toBeNull();
    expect(String(free?.detail.limit)).toMatch(/created without --storage-opt size/);
    expect(first.pool).toMatchObject({
      kind: 'filesystem',
      committedBytes: 64 * MiB,
      metadataUsedBytes: null,
    });
    expect(first.takenAtMs).toBe(1000);

    // steady state: one qgroup show per pass, nothing else
    runner.expect('btrfs', show, ok('qgroup-show'));
    const callsBefore = runner.calls.length;
    await backend.observe([limited, unlimited], 2000);
    expect(runner.calls.length - callsBefore).toBe(1);
  });

  it('falls back to the committed numbers when sysfs is not available', async () => {
    const { runner, backend, show, list } = track(setup({ live: false }));
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    const observation = await backend.observe([limited], 0);
    const usage = observation.containers.get(limited.id);
    expect(usage?.detail.usageSource).toBe('qgroup-show');
    expect(usage?.usedBytes).toBe(usage?.detail.committedReferencedBytes);
    expect(usage?.usedBytes).toBeGreaterThan(40 * MiB);
  });

  it('says for every container that the host cannot be served when quotas are disabled', async () => {
    const { runner, backend, show, list } = track(setup());
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show-disabled'));
    const observation = await backend.observe([limited, unlimited], 0);
    expect(observation.containers.size).toBe(0);
    for (const container of [limited, unlimited]) {
      expect(observation.errors.get(container.id)).toMatch(
        /btrfs quotas are disabled on .*fix: btrfs quota enable/,
      );
    }
    expect(observation.pool?.kind).toBe('filesystem');
  });

  it('reports a container whose layer is missing without failing the pass', async () => {
    const { runner, backend, show, list } = track(setup({ live: false }));
    const gone: ContainerInfo = { ...limited, id: 'f'.repeat(64), name: 'gone' };
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    const observation = await backend.observe([limited, gone], 0);
    expect(observation.errors.get(gone.id)).toMatch(/layer lookup failed/);
    expect(observation.containers.get(limited.id)?.sizeBytes).toBe(64 * MiB);
  });

  it('refuses a qgroup that belongs to another layer (stale mapping)', async () => {
    const { runner, backend, show, list } = track(setup({ live: false }));
    // the subvolume list claims the limited layer is the unlimited one's subvolume
    const swapped = recorded('subvolume-list').stdout.replace(
      `path btrfs/subvolumes/${ids.unlimitedMountId}\n`,
      `path btrfs/subvolumes/${ids.unlimitedMountId}-moved\n`,
    );
    const wrong = swapped
      .replace(
        `path btrfs/subvolumes/${ids.limitedMountId}\n`,
        `path btrfs/subvolumes/${ids.limitedMountId}-x\n`,
      )
      .replace(
        `path btrfs/subvolumes/${ids.unlimitedMountId}-moved\n`,
        `path btrfs/subvolumes/${ids.limitedMountId}\n`,
      );
    runner.expect('btrfs', list, { stdout: wrong });
    runner.expect('btrfs', show, ok('qgroup-show'));
    const observation = await backend.observe([limited], 0);
    expect(observation.errors.get(limited.id)).toMatch(/belongs to btrfs\/subvolumes\/.*not to layer/);
  });
});

describe('btrfs backend grow', () => {
  it('raises the qgroup limit, verifies it, then rewrites the quota file', async () => {
    const { runner, backend, show, limit, host } = track(setup());
    runner.expect('btrfs', ['subvolume', 'list', host.dataRoot], ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    runner.expect('btrfs', limit(80 * MiB), ok('qgroup-limit'));
    runner.expect('btrfs', show, ok('qgroup-show-after-limit'));
    const result = await backend.grow({
      container: limited,
      fromBytes: 64 * MiB,
      toBytes: 80 * MiB,
      dryRun: false,
    });
    expect(result).toMatchObject({ fromBytes: 64 * MiB, toBytes: 80 * MiB, noop: false, dryRun: false });
    expect(result.steps.map((step) => step.name)).toEqual([
      'btrfs qgroup limit',
      'btrfs qgroup show',
      `write ${host.quotaFile} = ${80 * MiB}`,
    ]);
    // Docker's format: the byte count, no newline
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(80 * MiB));
  });

  it('dry run: returns the exact plan and runs nothing but the read', async () => {
    const { runner, backend, show, list, limit, host } = track(setup());
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    const plan = await backend.grow({
      container: limited,
      fromBytes: 64 * MiB,
      toBytes: 80 * MiB,
      dryRun: true,
    });
    expect(plan).toMatchObject({ dryRun: true, noop: false, fromBytes: 64 * MiB, toBytes: 80 * MiB });
    expect(plan.steps[0]?.argv).toEqual(['btrfs', ...limit(80 * MiB)]);
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(64 * MiB));
  });

  it('a failed qgroup limit leaves everything as it was', async () => {
    const { runner, backend, show, list, limit, host } = track(setup());
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    runner.expect('btrfs', limit(80 * MiB), ok('qgroup-limit-missing'));
    await expect(
      backend.grow({ container: limited, fromBytes: 64 * MiB, toBytes: 80 * MiB, dryRun: false }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(/unable to limit requested quota group/),
      step: 'btrfs qgroup limit',
      deviceState: 'unchanged',
    });
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(64 * MiB));
  });

  it('a limit that did not take is reported and never persisted', async () => {
    const { runner, backend, show, list, limit, host } = track(setup());
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    runner.expect('btrfs', limit(80 * MiB), ok('qgroup-limit'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    await expect(
      backend.grow({ container: limited, fromBytes: 64 * MiB, toBytes: 80 * MiB, dryRun: false }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(/shows max referenced 67108864 instead of 83886080/),
      step: 'read back',
    });
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(64 * MiB));
  });

  it('a failed quota file write is a failed grow that names the consequence', async () => {
    const { runner, backend, show, list, limit, host } = track(
      setup({
        backend: {
          writeQuotaFile: () => {
            throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
          },
        },
      }),
    );
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    runner.expect('btrfs', limit(80 * MiB), ok('qgroup-limit'));
    runner.expect('btrfs', show, ok('qgroup-show-after-limit'));
    await expect(
      backend.grow({ container: limited, fromBytes: 64 * MiB, toBytes: 80 * MiB, dryRun: false }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(
        /writing .* failed \(EROFS.*next container start would reset the limit to 67108864/,
      ),
      step: 'write quota file',
      deviceState: 'limit-set-file-pending',
    });
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(64 * MiB));
  });

  it('never shrinks; a no-op still repairs a quota file left behind the live limit', async () => {
    const { runner, backend, show, list, host } = track(setup());
    writeFileSync(host.quotaFile, String(32 * MiB));
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show'));
    const result = await backend.grow({
      container: limited,
      fromBytes: 64 * MiB,
      toBytes: 48 * MiB,
      dryRun: false,
    });
    expect(result).toMatchObject({ noop: true, fromBytes: 64 * MiB, toBytes: 64 * MiB });
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(64 * MiB));
  });

  it('refuses containers without a size limit and targets that are not byte counts, running nothing', async () => {
    const { backend } = track(setup());
    await expect(
      backend.grow({ container: unlimited, fromBytes: 0, toBytes: 80 * MiB, dryRun: false }),
    ).rejects.toThrow(/without a size limit: never grown/);
    await expect(
      backend.grow({ container: limited, fromBytes: 64 * MiB, toBytes: 80 * MiB + 0.5, dryRun: false }),
    ).rejects.toThrow(/not a positive byte count/);
    await expect(
      backend.grow({
        container: { ...limited, id: '../../etc' },
        fromBytes: 1,
        toBytes: 80 * MiB,
        dryRun: false,
      }),
    ).rejects.toThrow(/not a Docker container id/);
  });
});

describe('btrfs backend recover and doctor', () => {
  it('recover() brings a quota file behind the live limit up to it', async () => {
    const { runner, backend, show, list, host } = track(setup());
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show-after-limit'));
    await backend.recover?.([limited, unlimited]);
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(80 * MiB));
  });

  it('doctor says clearly that quotas are disabled and how to fix it', async () => {
    const { runner, backend, show, fsShow, host } = track(
      setup({
        docker: {
          ...noDocker,
          listContainerIds: async () => [limited.id, unlimited.id],
          inspectContainer: async (id) => (id === limited.id ? limited : unlimited),
        },
      }),
    );
    runner.expect('btrfs', ['--version'], ok('version'));
    runner.expect('btrfs', show, ok('qgroup-show-disabled'));
    runner.expect('btrfs', fsShow, ok('filesystem-show'));
    const checks = await backend.doctor();
    const byName = new Map(checks.map((check) => [check.name, check]));
    expect(byName.get('btrfs-progs installed')).toMatchObject({ ok: true, detail: 'btrfs-progs v6.2' });
    expect(byName.get('btrfs quotas enabled')).toMatchObject({ ok: false, severity: 'error' });
    expect(byName.get('btrfs quotas enabled')?.fix).toContain(`btrfs quota enable ${host.dataRoot}`);
    // the unit test's data root is a temp dir, not btrfs: doctor says so
    expect(byName.get('data root on btrfs')?.ok).toBe(false);
    expect(byName.get('containers have a size limit')).toMatchObject({ ok: false, severity: 'warn' });
    expect(byName.get('containers have a size limit')?.detail).toContain(unlimited.name);
  });
});

describe('btrfs backend fast path (the fill guard)', () => {
  function observed() {
    const context = track(setup({ sysfs: 'sysfs-qgroup-before-commit' }));
    const { runner, show, list, fsShow } = context;
    runner.expect('btrfs', list, ok('subvolume-list'));
    runner.expect('btrfs', show, ok('qgroup-show-before-commit'));
    runner.expect('btrfs', fsShow, ok('filesystem-show'));
    return context;
  }
  const qgroupFile = (sysfsRoot: string, name: string) =>
    path.join(sysfsRoot, FS_UUID, 'qgroups', `0_${limitedSubvolumeId}`, name);

  it('reads live usage of limited containers from sysfs, with no process', async () => {
    const { runner, backend, host } = observed();
    await backend.observe([limited, unlimited], 1000);
    const callsBefore = runner.calls.length;
    const live = await backend.readLiveUsage!([limited.id, unlimited.id, 'f'.repeat(64)]);
    expect(runner.calls.length).toBe(callsBefore);
    const sysfs = recordedSysfs('sysfs-qgroup-before-commit');
    expect(live.get(limited.id)).toEqual({
      usedBytes:
        Number(sysfs.get('referenced')) +
        Number(sysfs.get('rsv_data')) +
        Number(sysfs.get('rsv_meta_pertrans')) +
        Number(sysfs.get('rsv_meta_prealloc')),
      sizeBytes: 64 * MiB,
    });
    // no Docker limit: never guarded; unknown: absent
    expect([...live.keys()]).toEqual([limited.id]);
    // the counters are read afresh at every look
    writeFileSync(qgroupFile(host.sysfsRoot, 'referenced'), `${60 * MiB}\n`);
    writeFileSync(qgroupFile(host.sysfsRoot, 'rsv_data'), '0\n');
    writeFileSync(qgroupFile(host.sysfsRoot, 'rsv_meta_pertrans'), '0\n');
    writeFileSync(qgroupFile(host.sysfsRoot, 'rsv_meta_prealloc'), '0\n');
    expect((await backend.readLiveUsage!([limited.id])).get(limited.id)?.usedBytes).toBe(60 * MiB);
  });

  it('the descriptor reader re-reads at every look, keeps the most recently read, and closes what it drops', async () => {
    const { host } = track(setup({ sysfs: 'sysfs-qgroup-before-commit' }));
    const qgroup = { level: 0, id: limitedSubvolumeId };
    const other = { level: 0, id: limitedSubvolumeId + 1 };
    const reader = new LiveQgroupReader(host.sysfsRoot, FS_UUID, 1);
    expect((await reader.read(qgroup))?.maxReferencedBytes).toBe(64 * MiB);
    expect(reader.openQgroups).toBe(1);
    writeFileSync(qgroupFile(host.sysfsRoot, 'max_referenced'), `${80 * MiB}\n`);
    expect((await reader.read(qgroup))?.maxReferencedBytes).toBe(80 * MiB);
    // a qgroup that does not exist: null, and the open one stays
    expect(await reader.read({ level: 0, id: 99999 })).toBeNull();
    expect(reader.openQgroups).toBe(1);
    // another one at the cap: the least recently read is closed to make room
    cpSync(
      path.dirname(qgroupFile(host.sysfsRoot, 'referenced')),
      path.join(host.sysfsRoot, FS_UUID, 'qgroups', `0_${other.id}`),
      {
        recursive: true,
      },
    );
    expect((await reader.read(other))?.maxReferencedBytes).toBe(80 * MiB);
    expect(reader.openQgroups).toBe(1);
    expect((await reader.read(qgroup))?.maxReferencedBytes).toBe(80 * MiB);
    reader.retain([]);
    expect(reader.openQgroups).toBe(0);
  });

  it('a qgroup gone between two looks is left out, not an error', async () => {
    const { backend, host } = observed();
    await backend.observe([limited, unlimited], 1000);
    rmSync(path.dirname(qgroupFile(host.sysfsRoot, 'referenced')), { recursive: true });
    expect((await backend.readLiveUsage!([limited.id])).size).toBe(0);
  });

  it('a partial pass keeps the other containers guarded; a whole pass drops the gone ones', async () => {
    const { runner, backend, show } = observed();
    await backend.observe([limited, unlimited], 1000);
    runner.expect('btrfs', show, ok('qgroup-show'));
    await backend.observe([unlimited], 2000, { partial: true });
    expect((await backend.readLiveUsage!([limited.id])).has(limited.id)).toBe(true);
    runner.expect('btrfs', show, ok('qgroup-show'));
    await backend.observe([unlimited], 3000);
    expect((await backend.readLiveUsage!([limited.id])).has(limited.id)).toBe(false);
  });

  it('a partial pass of guarded containers reads sysfs alone: no process, same usage', async () => {
    const { runner, backend } = observed();
    const whole = await backend.observe([limited, unlimited], 1000);
    const callsBefore = runner.calls.length;
    const partial = await backend.observe([limited], 1050, { partial: true });
    expect(runner.calls.length).toBe(callsBefore);
    expect(partial.errors).toEqual(new Map());
    expect(partial.containers.get(limited.id)).toEqual(whole.containers.get(limited.id));
    expect(partial.pool).toMatchObject({ kind: 'filesystem', committedBytes: 64 * MiB });
  });

  it('the in-flight reservations are reported, so the pool budget does not count them twice', async () => {
    const { backend } = observed();
    const observation = await backend.observe([limited, unlimited], 1000);
    const sysfs = recordedSysfs('sysfs-qgroup-before-commit');
    expect(observation.containers.get(limited.id)?.inFlightBytes).toBe(
      Number(sysfs.get('rsv_data')) +
        Number(sysfs.get('rsv_meta_pertrans')) +
        Number(sysfs.get('rsv_meta_prealloc')),
    );
  });

  it('after a pass, a grow is one process: the limit, read before and verified after in sysfs', async () => {
    const { runner, backend, host, limit } = observed();
    await backend.observe([limited, unlimited], 1000);
    runner.expect('btrfs', limit(80 * MiB), {
      ...ok('qgroup-limit'),
      // what the kernel does: the new limit shows in sysfs at once
      effect: () => writeFileSync(qgroupFile(host.sysfsRoot, 'max_referenced'), `${80 * MiB}\n`),
    });
    const callsBefore = runner.calls.length;
    const result = await backend.grow({
      container: limited,
      fromBytes: 64 * MiB,
      toBytes: 80 * MiB,
      dryRun: false,
    });
    expect(runner.calls.length - callsBefore).toBe(1);
    expect(result).toMatchObject({ fromBytes: 64 * MiB, toBytes: 80 * MiB, noop: false });
    expect(result.steps.map((step) => step.name)).toEqual([
      'btrfs qgroup limit',
      `read ${qgroupFile(host.sysfsRoot, 'max_referenced')}`,
      `write ${host.quotaFile} = ${80 * MiB}`,
    ]);
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(80 * MiB));
  });

  it('a limit that sysfs does not show is a failed grow and never persisted', async () => {
    const { runner, backend, host, limit } = observed();
    await backend.observe([limited, unlimited], 1000);
    runner.expect('btrfs', limit(80 * MiB), ok('qgroup-limit'));
    await expect(
      backend.grow({ container: limited, fromBytes: 64 * MiB, toBytes: 80 * MiB, dryRun: false }),
    ).rejects.toThrow(/shows max referenced 67108864 instead of 83886080/);
    expect(readFileSync(host.quotaFile, 'utf8')).toBe(String(64 * MiB));
  });
});
