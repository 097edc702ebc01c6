/**
 * The devicemapper backend against a simulated kernel (dm-sim.ts) on a strict ScriptedRunner:
 * the exact commands of a grow, each step failing in turn, the agent killed between each pair
 * of steps and recovered by a fresh backend, persistence on stop and at agent start, pool grows.
 * The real kernel runs these paths in test/guest/devicemapper-*.test.ts.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GrowJournal } from '../../src/storage/devicemapper/journal.js';
import { DevicemapperGrowError } from '../../src/storage/devicemapper/index.js';
import {
  CONTAINER_ID,
  DEVICE,
  GIB,
  HASH,
  INFO_ARGS,
  NEW_TABLE_3G,
  OLD_TABLE,
  POOL,
  clearStep,
  container,
  createStep,
  expectSteps,
  happyGrowSteps,
  holdStep,
  host,
  loadStep,
  noEffect,
  removeStep,
  restoreSteps,
  resumeStep,
  stuckResumeStep,
  xfsGrowStep,
  xfsSizeFor,
  type Host,
  type Step,
} from './dm-sim.js';
import path from 'node:path';

const request = (toBytes = 3 * GIB, dryRun = false) => ({
  container: container(),
  fromBytes: GIB,
  toBytes,
  dryRun,
});

function metadataSize(h: Host): number {
  return (JSON.parse(readFileSync(h.metadataFile, 'utf8')) as { size: number }).size;
}

function pendingIntents(h: Host) {
  return new GrowJournal(path.join(h.stateDir, 'devicemapper-intents.jsonl')).pending();
}

/** The device is usable: active, not suspended, no table left in the inactive slot, fs within it. */
function expectUsable(h: Host): void {
  const device = h.sim.device();
  expect(device.suspended).toBe(false);
  expect(device.inactive).toBeNull();
  expect(h.sim.fsSizeBytes).toBeLessThanOrEqual(h.sim.deviceBytes()!);
  expect(h.sim.invariantViolations).toEqual([]);
}

function expectRolledBack(h: Host): void {
  expectUsable(h);
  expect(h.sim.device().live).toBe(OLD_TABLE);
  expect(h.sim.fsSizeBytes).toBe(xfsSizeFor(GIB));
  expect(metadataSize(h)).toBe(GIB);
}

function expectGrown(h: Host): void {
  expectUsable(h);
  expect(h.sim.device().live).toBe(NEW_TABLE_3G);
  expect(h.sim.fsSizeBytes).toBe(xfsSizeFor(3 * GIB));
  expect(metadataSize(h)).toBe(3 * GIB);
}

describe('grow a container device', () => {
  it('runs the manual procedure: load, resume, re-read, xfs_growfs, verify, patch metadata', async () => {
    const h = host();
    const runner = h.sim.runner();
    expectSteps(runner, ...happyGrowSteps(h));
    const result = await h.backend(runner).grow(request());
    runner.assertDone();
    expect(result).toMatchObject({
      containerId: CONTAINER_ID,
      fromBytes: GIB,
      toBytes: 3 * GIB,
      noop: false,
      dryRun: false,
    });
    expectGrown(h);
    // Mutations were exactly load, resume (never signalled), xfs_growfs, then the kernel hold.
    const mutations = runner.calls.filter(
      (call) => !['table', 'status', 'info'].includes(call.args[0] ?? ''),
    );
    expect(mutations.map((call) => [call.tool, call.args[0]])).toEqual([
      ['dmsetup', 'load'],
      ['dmsetup', 'resume'],
      ['xfs_growfs', '-d'],
      ['losetup', '--read-only'],
    ]);
    expect(h.sim.holdNames()).toEqual(['loop9']);
    expect(h.sim.device().open).toBe(2); // Docker's mount and the hold
    expect(mutations[1]?.killOnTimeout).toBe(false);
    expect(pendingIntents(h)).toEqual([]);
  });

  it('--dry-run returns the exact plan and changes nothing', async () => {
    const h = host();
    const runner = h.sim.runner(); // reads only: any mutation fails the test
    const result = await h.backend(runner).grow(request(3 * GIB, true));
    expect(result.dryRun).toBe(true);
    expect(result.toBytes).toBe(3 * GIB);
    expect(result.steps.map((step) => step.argv)).toEqual([
      ['dmsetup', 'load', DEVICE, '--table', NEW_TABLE_3G],
      ['dmsetup', 'resume', DEVICE],
      ['xfs_growfs', '-d', h.mountPath],
      ['statfs', h.mountPath],
      ['write', h.metadataFile, `size=${3 * GIB}`],
    ]);
    expectRolledBack(h);
    expect(pendingIntents(h)).toEqual([]);
  });

  it('never shrinks: growing to the current size or below is a no-op', async () => {
    const h = host();
    const runner = h.sim.runner();
    const backend = h.backend(runner);
    for (const toBytes of [GIB, GIB / 2, GIB - 4096]) {
      const result = await backend.grow(request(toBytes));
      expect(result).toMatchObject({ noop: true, fromBytes: GIB, toBytes: GIB });
    }
    expectRolledBack(h);
  });

  it('refuses a device whose live table is not one thin target on the expected pool', async () => {
    const cases: Array<[string, (h: Host) => void, RegExp]> = [
      ['another pool', (h) => (h.sim.device().live = '0 2097152 thin 253:9 4'), /not on pool/],
      [
        'another device id',
        (h) => (h.sim.device().live = '0 2097152 thin 253:2 5'),
        /differs from Docker's DeviceId/,
      ],
      [
        'a linear target',
        (h) => (h.sim.device().live = '0 2097152 linear 254:16 0'),
        /exactly one thin target/,
      ],
      ['no such device', (h) => h.sim.devices.delete(DEVICE), /not active/],
      ['a pool needing check', (h) => (h.sim.poolNeedsCheck = true), /needs_check/],
      ['a read-only pool', (h) => (h.sim.poolMode = 'ro'), /pool docker-thinpool is ro/],
      ['a suspended device', (h) => (h.sim.device().suspended = true), /suspended/],
    ];
    for (const [what, arrange, message] of cases) {
      const h = host();
      arrange(h);
      const runner = h.sim.runner();
      await expect(h.backend(runner).grow(request()), what).rejects.toThrow(message);
      expect(runner.calls.every((call) => ['table', 'status', 'info'].includes(call.args[0] ?? ''))).toBe(
        true,
      );
    }
  });

  it('refuses Docker data that is not a Docker thin device name', async () => {
    const h = host();
    const runner = h.sim.runner();
    const bad = container({ graphDriverData: { DeviceId: '4', DeviceName: POOL } });
    await expect(
      h.backend(runner).grow({ container: bad, fromBytes: GIB, toBytes: 3 * GIB, dryRun: false }),
    ).rejects.toThrow(/not a Docker thin device/);
    expect(runner.calls).toEqual([]);
  });
});

describe('each grow step failing in turn leaves the device usable', () => {
  it('load fails cleanly: nothing changed, failure counted, journal closed', async () => {
    const h = host();
    const runner = h.sim.runner();
    runner.expect(
      ...loadStep(h.sim, { effect: noEffect, outcome: 'fail', stderr: 'device-mapper: reload ioctl failed' }),
    );
    const backend = h.backend(runner);
    const error = await backend.grow(request()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DevicemapperGrowError);
    expect((error as DevicemapperGrowError).step).toBe('dmsetup load');
    expect(backend.failureCounts().get('dmsetup load')).toBe(1);
    expectRolledBack(h);
    expect(pendingIntents(h)).toEqual([]);
  });

  it('load fails after leaving a table in the inactive slot: it is cleared', async () => {
    const h = host();
    const runner = h.sim.runner();
    expectSteps(runner, loadStep(h.sim, { outcome: 'fail' }), clearStep(h.sim));
    await expect(h.backend(runner).grow(request())).rejects.toThrow(/dmsetup load failed/);
    runner.assertDone();
    expectRolledBack(h);
  });

  it('resume fails with the new table live and the device suspended (preresume failure): the saved table is restored and resumed', async () => {
    const h = host();
    const runner = h.sim.runner();
    expectSteps(
      runner,
      loadStep(h.sim),
      stuckResumeStep(h.sim, {
        outcome: 'fail',
        stderr: 'device-mapper: resume ioctl failed: Invalid argument',
      }),
      ...restoreSteps(h.sim, DEVICE, OLD_TABLE),
    );
    const backend = h.backend(runner);
    const error = (await backend.grow(request()).catch((caught: unknown) => caught)) as DevicemapperGrowError;
    runner.assertDone();
    expect(error.step).toBe('dmsetup resume');
    expect(error.deviceState).toBe('restored');
    expect(backend.failureCounts().get('dmsetup resume')).toBe(1);
    expectRolledBack(h);
    expect(pendingIntents(h)).toEqual([]);
  });

  it('resume fails with the old table live, suspended, new table still inactive: cleared and resumed', async () => {
    const h = host();
    const runner = h.sim.runner();
    expectSteps(
      runner,
      loadStep(h.sim),
      resumeStep(h.sim, { effect: () => (h.sim.device().suspended = true), outcome: 'fail' }),
      clearStep(h.sim),
      resumeStep(h.sim),
    );
    await expect(h.backend(runner).grow(request())).rejects.toThrow(/dmsetup resume failed/);
    runner.assertDone();
    expectRolledBack(h);
  });

  it('resume reports an error but the kernel made the new table live: the grow continues', async () => {
    const h = host();
    const runner = h.sim.runner();
    expectSteps(
      runner,
      loadStep(h.sim),
      resumeStep(h.sim, { outcome: 'fail', stderr: 'udev cookie wait failed' }),
      xfsGrowStep(h),
    );
    await h.backend(runner).grow(request());
    runner.assertDone();
    expectGrown(h);
  });

  it('xfs_growfs fails: the device stays grown (never shrunk under a filesystem), recover() finishes the grow', async () => {
    const h = host();
    const runner = h.sim.runner();
    expectSteps(
      runner,
      loadStep(h.sim),
      resumeStep(h.sim),
      xfsGrowStep(h, {
        effect: noEffect,
        outcome: 'fail',
        stderr: 'xfs_growfs: XFS_IOC_FSGROWFSDATA xfsctl failed',
      }),
    );
    const backend = h.backend(runner);
    const error = (await backend.grow(request()).catch((caught: unknown) => caught)) as DevicemapperGrowError;
    expect(error.step).toBe('xfs_growfs');
    expect(error.deviceState).toBe('grown-fs-pending');
    expect(backend.failureCounts().get('xfs_growfs')).toBe(1);
    expectUsable(h);
    expect(h.sim.device().live).toBe(NEW_TABLE_3G);
    expect(metadataSize(h)).toBe(GIB);
    expect(pendingIntents(h)).toHaveLength(1);

    const restart = expectSteps(h.sim.runner(), xfsGrowStep(h));
    await h.backend(restart).recover([container()]);
    restart.assertDone();
    expectGrown(h);
    expect(pendingIntents(h)).toEqual([]);
  });

  it('verify fails (the filesystem did not grow): reported and counted; recover() retries', async () => {
    const h = host();
    const runner = h.sim.runner();
    // xfs_growfs exits 0 but the filesystem keeps its size.
    expectSteps(runner, loadStep(h.sim), resumeStep(h.sim), xfsGrowStep(h, { effect: noEffect }));
    const backend = h.backend(runner);
    const error = (await backend.grow(request()).catch((caught: unknown) => caught)) as DevicemapperGrowError;
    expect(error.step).toBe('verify');
    expect(backend.failureCounts().get('verify')).toBe(1);
    expectUsable(h);

    const restart = expectSteps(h.sim.runner(), xfsGrowStep(h));
    await h.backend(restart).recover([container()]);
    expectGrown(h);
  });
});

/**
 * The agent is killed between each pair of steps (a command that never returns: its kernel
 * effect applied or not), then a fresh backend over the same journal and kernel state recovers.
 */
describe('agent killed between steps, then recover()', () => {
  type KillPoint = {
    name: string;
    /** What the agent ran before it died: the last step never returns (outcome 'hang'). */
    script: (h: Host) => Step[];
    /** What recover() must run on the restarted agent. */
    recovery: (h: Host) => Step[];
    outcome: 'rolled-back' | 'grown';
  };
  const killed = { outcome: 'hang' } as const;
  /** Killed before the command reached the kernel. */
  const killedBefore = { outcome: 'hang', effect: noEffect } as const;

  const killPoints: KillPoint[] = [
    {
      name: 'after the intent, before load ran',
      script: (h) => [loadStep(h.sim, killedBefore)],
      recovery: () => [],
      outcome: 'rolled-back',
    },
    {
      name: 'load ran in the kernel, agent killed before recording it',
      script: (h) => [loadStep(h.sim, killed)],
      recovery: (h) => [clearStep(h.sim)],
      outcome: 'rolled-back',
    },
    {
      name: 'after load was recorded, before resume ran',
      script: (h) => [loadStep(h.sim), resumeStep(h.sim, killedBefore)],
      recovery: (h) => [clearStep(h.sim)],
      outcome: 'rolled-back',
    },
    {
      name: 'mid-resume: new table live, device still suspended',
      script: (h) => [loadStep(h.sim), stuckResumeStep(h.sim, killed)],
      recovery: (h) => restoreSteps(h.sim, DEVICE, OLD_TABLE),
      outcome: 'rolled-back',
    },
    {
      name: 'resume finished in the kernel, agent killed before recording it',
      script: (h) => [loadStep(h.sim), resumeStep(h.sim, killed)],
      recovery: (h) => [xfsGrowStep(h), holdStep(h.sim)],
      outcome: 'grown',
    },
    {
      name: 'after resume was recorded, before xfs_growfs ran',
      script: (h) => [loadStep(h.sim), resumeStep(h.sim), xfsGrowStep(h, killedBefore)],
      recovery: (h) => [xfsGrowStep(h), holdStep(h.sim)],
      outcome: 'grown',
    },
    {
      name: 'xfs_growfs finished, agent killed before recording it',
      script: (h) => [loadStep(h.sim), resumeStep(h.sim), xfsGrowStep(h, killed)],
      // Growing an XFS that already fills its device is harmless ("data size unchanged").
      recovery: (h) => [xfsGrowStep(h), holdStep(h.sim)],
      outcome: 'grown',
    },
  ];

  for (const point of killPoints) {
    it(`${point.name} → ${point.outcome}`, async () => {
      const h = host();
      const runner = expectSteps(h.sim.runner(), ...point.script(h));
      void h.backend(runner).grow(request()); // never settles: the agent "died" here
      await new Promise((resolve) => setTimeout(resolve, 20));
      runner.assertDone();
      expect(h.sim.fsSizeBytes).toBeLessThanOrEqual(h.sim.deviceBytes()!);

      const restarted = expectSteps(h.sim.runner(), ...point.recovery(h));
      await h.backend(restarted).recover([container()]);
      restarted.assertDone();
      if (point.outcome === 'grown') expectGrown(h);
      else expectRolledBack(h);
      expect(pendingIntents(h)).toEqual([]);
    });
  }

  it('killed after the metadata patch: recover() only closes the journal', async () => {
    const h = host();
    const runner = h.sim.runner();
    expectSteps(runner, ...happyGrowSteps(h));
    await h.backend(runner).grow(request());
    // Re-open the last intent as if the 'done' record was lost (a torn last line).
    const journalFile = path.join(h.stateDir, 'devicemapper-intents.jsonl');
    const lines = readFileSync(journalFile, 'utf8').trimEnd().split('\n');
    writeFileSync(journalFile, `${lines.slice(0, -1).join('\n')}\n{"step":"do`);
    expect(pendingIntents(h)).toHaveLength(1);
    const restarted = h.sim.runner();
    await h.backend(restarted).recover([container()]);
    expectGrown(h);
    expect(pendingIntents(h)).toEqual([]);
  });

  it('the container stopped (device removed) after the resume: the grown size is persisted', async () => {
    const h = host();
    const runner = expectSteps(
      h.sim.runner(),
      loadStep(h.sim),
      resumeStep(h.sim),
      xfsGrowStep(h, { outcome: 'hang', effect: noEffect }),
    );
    void h.backend(runner).grow(request());
    await new Promise((resolve) => setTimeout(resolve, 20));
    h.sim.devices.delete(DEVICE); // docker stop
    h.docker.current = container({ running: false, state: 'exited', pid: 0 });
    const restarted = expectSteps(h.sim.runner(), createStep(h.sim), holdStep(h.sim));
    await h.backend(restarted).recover([h.docker.current]);
    restarted.assertDone();
    expect(h.sim.device().live).toBe(NEW_TABLE_3G);
    expect(metadataSize(h)).toBe(3 * GIB);
    expect(pendingIntents(h)).toEqual([]);
  });
});

describe('persistence: a grown container starts again at its grown size', () => {
  async function grownHost(): Promise<Host> {
    const h = host();
    const runner = h.sim.runner();
    expectSteps(runner, ...happyGrowSteps(h));
    await h.backend(runner).grow(request());
    return h;
  }
  const HOLD = 'loop9';
  const stopped = () => container({ running: false, state: 'exited', pid: 0 });
  /** dockerd restarted since the grow: it read the patched metadata file and caches the grown size. */
  const dockerCaches = (bytes: number, overrides = {}) =>
    container({
      graphDriverData: { DeviceId: '4', DeviceName: DEVICE, DeviceSize: String(bytes) },
      ...overrides,
    });
  /** Docker's stop on a device nothing else holds: it is removed (no hold, e.g. an older agent). */
  function dockerRemovesUnheldDevice(h: Host): void {
    if (h.sim.holdNames().includes(HOLD)) h.sim.remove(HOLD);
    h.sim.devices.delete(DEVICE);
  }

  it('the grow leaves a kernel hold that outlives the process: a later agent takes it over, a stop keeps the device', async () => {
    // Issue 13: `once` grows and exits; `run` starts later; then docker stop + start.
    const h = await grownHost();
    expect(h.sim.holdNames()).toEqual([HOLD]);
    const runner = h.sim.runner(); // the later agent: reads only, the hold is already there
    const agent = h.backend(runner);
    await agent.recover([container()]);
    const observation = await agent.observe([container()], 1);
    expect(observation.containers.get(CONTAINER_ID)?.detail.persistence).toBe('held');
    expect(agent.pendingPersistence()).toMatchObject([{ hash: HASH, state: 'held', grownBytes: 3 * GIB }]);
    expect(await agent.heldDevices()).toEqual([HASH]);
    // docker stop: the device is open (the hold), so Docker only schedules a deferred removal.
    h.docker.current = stopped();
    await agent.onContainerStopped(stopped());
    expect(h.sim.deviceBytes()).toBe(3 * GIB);
    runner.assertDone();
  });

  it('on stop, a device Docker removed (no hold) is re-created at the grown size on the same pool and id, and held', async () => {
    const h = await grownHost();
    dockerRemovesUnheldDevice(h);
    h.docker.current = stopped();
    const runner = expectSteps(h.sim.runner(), createStep(h.sim), holdStep(h.sim));
    await h.backend(runner).onContainerStopped(h.docker.current);
    runner.assertDone();
    expect(h.sim.device().live).toBe(NEW_TABLE_3G);
    expect(h.sim.holdNames()).toEqual([HOLD]);
  });

  it('waits for Docker to remove the old-size device before re-creating it', async () => {
    const h = await grownHost();
    h.sim.remove(HOLD);
    h.docker.current = stopped();
    let waits = 0;
    const runner = expectSteps(h.sim.runner(), createStep(h.sim), holdStep(h.sim));
    // The device is still there (deferred removal in progress) for two polls.
    h.sim.device().live = OLD_TABLE;
    await h
      .backend(runner, {
        sleep: async () => {
          waits += 1;
          if (waits === 2) h.sim.devices.delete(DEVICE);
        },
      })
      .onContainerStopped(h.docker.current);
    runner.assertDone();
    expect(waits).toBe(2);
  });

  it('a device Docker left active at its old size and unopened (a failed start) is lengthened in place', async () => {
    const h = await grownHost();
    h.sim.remove(HOLD);
    h.docker.current = stopped();
    h.sim.device().live = OLD_TABLE;
    h.sim.device().open = 0;
    let clock = 0;
    const runner = expectSteps(h.sim.runner(), loadStep(h.sim), resumeStep(h.sim), holdStep(h.sim));
    await h
      .backend(runner, { nowMs: () => (clock += 1000), recreateWaitMs: 3000 })
      .onContainerStopped(h.docker.current);
    runner.assertDone();
    expect(h.sim.device().live).toBe(NEW_TABLE_3G);
  });

  it('a container that was removed gets no device back; its hold is released and its record dropped', async () => {
    const h = await grownHost();
    h.docker.current = null;
    rmSync(h.metadataFile); // docker rm
    const runner = expectSteps(h.sim.runner(), removeStep(h.sim, HOLD));
    const backend = h.backend(runner);
    await backend.onContainerStopped(container({ running: false }));
    await backend.recover([]);
    runner.assertDone();
    expect(h.sim.holdNames()).toEqual([]);
    expect(readFileSync(path.join(h.stateDir, 'devicemapper-grown.json'), 'utf8')).not.toContain(HASH);
  });

  it('at agent start, a grown container stopped while no agent ran gets its device re-created and held', async () => {
    const h = await grownHost();
    dockerRemovesUnheldDevice(h);
    h.docker.current = stopped();
    const runner = expectSteps(h.sim.runner(), createStep(h.sim), holdStep(h.sim));
    await h.backend(runner).recover([]); // the reconciler passes running containers only
    runner.assertDone();
    expect(h.sim.device().live).toBe(NEW_TABLE_3G);
  });

  it('a grown container stopped while its grow is pending stays in the observation (it has no usage row)', async () => {
    const h = await grownHost();
    h.docker.current = stopped();
    const backend = h.backend(h.sim.runner()); // the hold is in place: reads only
    const observation = await backend.observe([stopped()], 1);
    expect(observation.containers.has(CONTAINER_ID)).toBe(false);
    expect(observation.unpersisted).toEqual([
      {
        containerId: CONTAINER_ID,
        deviceName: DEVICE,
        state: 'held',
        running: false,
        grownBytes: 3 * GIB,
        dockerSizeBytes: GIB, // what dockerd caches: the base size
      },
    ]);
  });

  it('a pass puts back a hold that went missing (asking dockerd at most every recheck interval)', async () => {
    const h = await grownHost();
    h.sim.remove(HOLD);
    let clock = 0;
    const runner = expectSteps(h.sim.runner(), holdStep(h.sim));
    const backend = h.backend(runner, { nowMs: () => clock, persistenceRecheckMs: 10_000 });
    const observation = await backend.observe([container()], 1);
    runner.assertDone();
    expect(observation.containers.get(CONTAINER_ID)?.detail.persistence).toBe('held');
    // dockerd look-ups over passes inside one recheck interval: one
    const counting = h.backend(h.sim.runner(), { nowMs: () => clock, persistenceRecheckMs: 10_000 });
    h.docker.inspections = 0;
    for (clock = 0; clock < 5000; clock += 1000) await counting.observe([container()], clock);
    expect(h.docker.inspections).toBe(1);
    clock = 20_000;
    await counting.observe([container()], clock);
    expect(h.docker.inspections).toBe(2);
  });

  it('a dry-run pass (status, once --dry-run) only reports: no hold placed, nothing released', async () => {
    const h = await grownHost();
    h.sim.remove(HOLD);
    const runner = h.sim.runner(); // reads only
    const backend = h.backend(runner);
    const observation = await backend.observe([container()], 1, { dryRun: true });
    expect(observation.containers.get(CONTAINER_ID)?.detail.persistence).toBe('unheld');
    h.docker.current = dockerCaches(3 * GIB);
    h.sim.addHold(DEVICE);
    await h.backend(runner).observe([dockerCaches(3 * GIB)], 2, { dryRun: true });
    expect(h.sim.holdNames()).toEqual([HOLD]);
    expect(readFileSync(path.join(h.stateDir, 'devicemapper-grown.json'), 'utf8')).toContain(HASH);
  });

  it('once dockerd caches the grown size (it restarted since the grow) the hold is released and the grow is persistent', async () => {
    const h = await grownHost();
    h.docker.current = dockerCaches(3 * GIB);
    const runner = expectSteps(h.sim.runner(), removeStep(h.sim, HOLD));
    const backend = h.backend(runner);
    const observation = await backend.observe([dockerCaches(3 * GIB)], 1);
    runner.assertDone();
    expect(h.sim.holdNames()).toEqual([]);
    expect(h.sim.device().open).toBe(1);
    expect(observation.containers.get(CONTAINER_ID)?.detail.persistence).toBeUndefined();
    expect(backend.pendingPersistence()).toEqual([]);
    expect(readFileSync(path.join(h.stateDir, 'devicemapper-grown.json'), 'utf8')).not.toContain(HASH);
  });

  it('Docker marking the container deleted (docker rm of a held device) releases the hold so its deferred removal completes', async () => {
    const h = await grownHost();
    writeFileSync(
      h.metadataFile,
      '{"device_id":4,"size":3221225472,"transaction_id":4,"initialized":false,"deleted":true}',
    );
    h.sim.device().open = 1; // only the hold: Docker unmounted it
    const runner = expectSteps(h.sim.runner(), removeStep(h.sim, HOLD), removeStep(h.sim, DEVICE));
    await h.backend(runner).observe([], 2);
    runner.assertDone();
    expect(h.sim.devices.has(DEVICE)).toBe(false);
    expect(readFileSync(path.join(h.stateDir, 'devicemapper-grown.json'), 'utf8')).not.toContain(HASH);
  });

  it('without deferred removal no hold is placed: the grow is reported unheld', async () => {
    const h = host();
    const runner = expectSteps(h.sim.runner(), loadStep(h.sim), resumeStep(h.sim), xfsGrowStep(h));
    const backend = h.backend(runner, { holdGrownDevices: false });
    await backend.grow(request());
    const observation = await backend.observe([container()], 1);
    runner.assertDone();
    expect(observation.containers.get(CONTAINER_ID)?.detail.persistence).toBe('unheld');
  });

  it('a container that was never grown is left alone on stop', async () => {
    const h = host();
    h.sim.devices.delete(DEVICE);
    const runner = h.sim.runner();
    await h.backend(runner).onContainerStopped(container({ running: false }));
    expect(runner.calls).toEqual([]);
  });
});
describe('observe', () => {
  it('uses three dmsetup commands whatever the container count and reports usage and the pool', async () => {
    const h = host();
    const runner = h.sim.runner();
    const spoofed = container({
      id: 'f'.repeat(64),
      graphDriverData: { DeviceId: '9', DeviceName: `docker-254:0-15931-${'a'.repeat(64)}` },
    });
    const observation = await h
      .backend(runner)
      .observe([container(), spoofed, container({ id: 'e'.repeat(64), running: false })], 42);
    expect(runner.calls.map((call) => call.args.join(' '))).toEqual([
      'table',
      'status --noflush',
      INFO_ARGS.join(' '),
    ]);
    const usage = observation.containers.get(CONTAINER_ID)!;
    expect(usage).toMatchObject({ sizeBytes: GIB, fsType: 'xfs', inodesTotal: 1_000_000, inodesUsed: 1000 });
    expect(usage.usedBytes).toBe(GIB - h.sim.fsAvailableBytes);
    expect(usage.detail.mappedBytes).toBe(145408 * 512);
    expect(observation.errors.get('f'.repeat(64))).toMatch(/not an active dm device/);
    expect(observation.containers.size).toBe(1);
    expect(observation.pool).toMatchObject({
      name: POOL,
      kind: 'thin-pool-lvm',
      dataUsedBytes: 210 * 1024 * 512,
      dataTotalBytes: 8184 * 1024 * 512,
      metadataUsedBytes: 2064 * 4096,
      metadataTotalBytes: 20480 * 4096,
      mode: 'rw',
      needsCheck: false,
      committedBytes: GIB,
    });
  });

  it('the fill guard reads usage with one statfs and no command, for the containers the pass saw', async () => {
    const h = host();
    const runner = h.sim.runner();
    const backend = h.backend(runner);
    const other = 'e'.repeat(64);
    await backend.observe([container()], 1);
    const commandsAfterPass = runner.calls.length;
    h.sim.fsAvailableBytes -= 100 * 1024 * 1024;
    const live = await backend.readLiveUsage!([CONTAINER_ID, other]);
    expect(runner.calls.length).toBe(commandsAfterPass);
    expect([...live.keys()]).toEqual([CONTAINER_ID]);
    // the same arithmetic as the pass: device size minus what statfs says is available
    expect(live.get(CONTAINER_ID)).toEqual({ usedBytes: GIB - h.sim.fsAvailableBytes, sizeBytes: GIB });
    // another filesystem size there (unmounted: statfs reads the parent; or grown): left out
    const fsSizeBytes = h.sim.fsSizeBytes;
    h.sim.fsSizeBytes += 4096;
    expect((await backend.readLiveUsage!([CONTAINER_ID])).size).toBe(0);
    h.sim.fsSizeBytes = fsSizeBytes;
    // a partial pass of another container keeps it; a whole pass without it drops it
    await backend.observe([container({ id: other, running: false })], 2, { partial: true });
    expect((await backend.readLiveUsage!([CONTAINER_ID])).size).toBe(1);
    await backend.observe([], 3);
    expect((await backend.readLiveUsage!([CONTAINER_ID])).size).toBe(0);
  });

  it('a grow drops the container from the fast path until the next pass', async () => {
    const h = host();
    const runner = h.sim.runner();
    const backend = h.backend(runner);
    await backend.observe([container()], 1);
    expect((await backend.readLiveUsage!([CONTAINER_ID])).size).toBe(1);
    expectSteps(runner, ...happyGrowSteps(h));
    await backend.grow(request());
    expect((await backend.readLiveUsage!([CONTAINER_ID])).size).toBe(0);
    await backend.observe([container()], 2);
    expect((await backend.readLiveUsage!([CONTAINER_ID])).get(CONTAINER_ID)?.sizeBytes).toBe(3 * GIB);
  });

  it('takes the last mount on the container path (it hides the earlier ones) and checks it is the device', async () => {
    const h = host();
    const mountinfo = readFileSync(h.mountinfoPath, 'utf8');
    // Something else mounted over the container's XFS (a later line): the backend must refuse.
    const hidden = `${mountinfo}40 33 254:0 / ${h.mountPath} rw,relatime shared:9 - ext4 /dev/vda rw\n`;
    writeFileSync(h.mountinfoPath, hidden);
    const covered = await h.backend(h.sim.runner()).observe([container()], 1);
    expect(covered.errors.get(CONTAINER_ID)).toBe(
      `${h.mountPath} is mounted from 254:0, not from the container's device 253:3`,
    );
    // The same mounts in the other order: the container's XFS is on top and is observed.
    const lines = hidden.trimEnd().split('\n');
    writeFileSync(h.mountinfoPath, `${[lines[0], lines[2], lines[1]].join('\n')}\n`);
    const onTop = await h.backend(h.sim.runner()).observe([container()], 2);
    expect(onTop.errors.size).toBe(0);
    expect(onTop.containers.get(CONTAINER_ID)?.fsType).toBe('xfs');
    // Not mounted at all.
    writeFileSync(h.mountinfoPath, `${lines[0]}\n`);
    const unmounted = await h.backend(h.sim.runner()).observe([container()], 3);
    expect(unmounted.errors.get(CONTAINER_ID)).toBe(`${h.mountPath} is not mounted`);
  });

  it('reports Fail and needs_check pools', async () => {
    const h = host();
    h.sim.poolMode = 'Fail';
    const observation = await h.backend(h.sim.runner()).observe([container()], 1);
    expect(observation.pool?.mode).toBe('fail');
    h.sim.poolMode = 'ro';
    h.sim.poolNeedsCheck = true;
    const again = await h.backend(h.sim.runner()).observe([container()], 2);
    expect(again.pool).toMatchObject({ mode: 'ro', needsCheck: true });
  });
});
