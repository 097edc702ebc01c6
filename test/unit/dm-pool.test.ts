/**
 * Growing the thin pool (direct-lvm with lvextend, loop-lvm online with truncate + losetup -c +
 * pool reload) and the doctor checks, against the simulated kernel of dm-sim.ts.
 * The LVM JSON (dm-sim.ts lvsReport/vgsReport) follows lvm2's `--reportformat json` layout with the
 * simulated pool's values; test/unit/dm-parse.test.ts reads the recorded lvs/vgs JSON.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEVICE,
  GIB,
  LOOP_DATA_FILE,
  POOL,
  POOL_BLOCK_BYTES,
  container,
  expectSteps,
  happyGrowSteps,
  host,
  loopGrowSteps,
  loopHost,
  lvmReportSteps,
  noEffect,
  reply,
  restoreSteps,
  resumeStep,
  stuckResumeStep,
} from './dm-sim.js';

describe('loop-lvm pool grow, online', () => {
  const newTable = `0 ${16384 * 1024} thin-pool 7:1 7:0 1024 0 1 skip_block_zeroing`;

  it('extends the sparse file, refreshes the loop device, reloads the pool with only the length changed, reads back', async () => {
    const loop = loopHost();
    const { h } = loop;
    const runner = expectSteps(
      h.sim.runner(),
      ...loopGrowSteps(loop, 8 * GIB, newTable),
      resumeStep(h.sim, {
        name: POOL,
        effect: () => {
          h.sim.resume(POOL);
          h.sim.poolDataTotalBlocks = 16384;
        },
      }),
    );
    const backend = h.backend(runner, loop.options);
    const result = await backend.growPool(8 * GIB, false);
    runner.assertDone();
    expect(result).toMatchObject({ fromBytes: 8184 * POOL_BLOCK_BYTES, toBytes: 8 * GIB });
    expect(runner.calls.find((call) => call.args[0] === 'resume')?.killOnTimeout).toBe(false);
    expect(h.sim.device(POOL).inactive).toBeNull();
  });

  it('--dry-run lists the exact commands and runs none of them', async () => {
    const { h, options } = loopHost();
    const runner = h.sim.runner();
    const result = await h.backend(runner, options).growPool(8 * GIB, true);
    expect(result.steps.map((step) => step.argv)).toEqual([
      ['truncate', '-s', `>${8 * GIB}`, LOOP_DATA_FILE],
      ['losetup', '-c', '/dev/loop0'],
      ['dmsetup', 'load', POOL, '--table', newTable],
      ['dmsetup', 'resume', POOL],
    ]);
  });

  it('refuses a pool flagged needs_check (the kernel would report success and not grow)', async () => {
    const { h, options } = loopHost();
    h.sim.poolNeedsCheck = true;
    const runner = h.sim.runner();
    await expect(h.backend(runner, options).growPool(8 * GIB, false)).rejects.toThrow(/needs_check/);
  });

  it('detects a reload the kernel accepted without growing, and counts it', async () => {
    const loop = loopHost();
    const { h } = loop;
    const runner = expectSteps(
      h.sim.runner(),
      ...loopGrowSteps(loop, 8 * GIB, newTable),
      // "unable to grow the data device until repaired": resume returns 0, the pool keeps its size.
      resumeStep(h.sim, { name: POOL }),
    );
    const backend = h.backend(runner, loop.options);
    await expect(backend.growPool(8 * GIB, false)).rejects.toThrow(/still/);
    runner.assertDone();
    expect(backend.failureCounts().get('verify pool')).toBe(1);
  });

  it('a rejected pool reload that leaves the pool suspended gets the saved table back and resumed', async () => {
    const loop = loopHost();
    const { h } = loop;
    const oldTable = h.sim.device(POOL).live;
    const runner = expectSteps(
      h.sim.runner(),
      ...loopGrowSteps(loop, 8 * GIB, newTable),
      stuckResumeStep(h.sim, {
        name: POOL,
        table: newTable,
        outcome: 'fail',
        stderr: 'resume ioctl on docker-thinpool failed: Invalid argument',
      }),
      ...restoreSteps(h.sim, POOL, oldTable),
    );
    await expect(h.backend(runner, loop.options).growPool(8 * GIB, false)).rejects.toThrow(
      /Invalid argument/,
    );
    runner.assertDone();
    expect(h.sim.device(POOL)).toMatchObject({ live: oldTable, suspended: false, inactive: null });
  });

  it('refuses a loop device whose backing file is not the one docker info names', async () => {
    const { h, sysBlockDir, options } = loopHost();
    writeFileSync(path.join(sysBlockDir, 'loop0', 'loop', 'backing_file'), '/tmp/other\n');
    await expect(h.backend(h.sim.runner(), options).growPool(8 * GIB, false)).rejects.toThrow(/backed by/);
  });
});

describe('direct-lvm pool grow', () => {
  it('uses lvextend (never a raw reload of an LVM-owned pool) and reads the pool back', async () => {
    const h = host();
    const runner = expectSteps(h.sim.runner(), ...lvmReportSteps(8 * GIB), [
      'lvextend',
      ['-L', `${6 * GIB}b`, 'docker/thinpool'],
      reply(() => (h.sim.poolDataTotalBlocks = 12288)),
    ]);
    const result = await h.backend(runner).growPool(6 * GIB, false);
    runner.assertDone();
    expect(result.toBytes).toBe(12288 * POOL_BLOCK_BYTES);
    expect(runner.calls.some((call) => call.tool === 'dmsetup' && call.args[0] === 'load')).toBe(false);
  });

  it('stays within the volume group free space', async () => {
    const h = host();
    const runner = expectSteps(h.sim.runner(), ...lvmReportSteps(GIB));
    await expect(h.backend(runner).growPool(8 * GIB, false)).rejects.toThrow(/bytes free/);
    runner.assertDone();
  });

  it('grows metadata with --poolmetadatasize', async () => {
    const h = host();
    const runner = expectSteps(h.sim.runner(), ...lvmReportSteps(8 * GIB), [
      'lvextend',
      ['--poolmetadatasize', `${160 * 1024 * 1024}b`, 'docker/thinpool'],
      reply(noEffect),
    ]);
    // The simulated kernel keeps the metadata size: the read-back catches it.
    await expect(h.backend(runner).growPoolMetadata(160 * 1024 * 1024, false)).rejects.toThrow(
      /metadata is still/,
    );
    runner.assertDone();
  });
});

describe('doctor', () => {
  it('reports udev sync, deferred removal, live-restore, pool health, autoextend and binaries', async () => {
    const h = host();
    const runner = h.sim.runner();
    runner.expect('lvm', ['config', '--typeconfig', 'full', 'activation/thin_pool_autoextend_threshold'], {
      stdout: 'thin_pool_autoextend_threshold=100\n',
    });
    const checks = await h.backend(runner).doctor();
    const byName = new Map(checks.map((check) => [check.name, check]));
    expect(byName.get('udev sync supported')?.ok).toBe(true);
    expect(byName.get('deferred removal enabled')?.ok).toBe(true);
    expect(byName.get('live-restore')?.ok).toBe(true);
    expect(byName.get('pool healthy')?.ok).toBe(true);
    expect(byName.get('LVM thin pool autoextend')?.detail).toMatch(/off/);
    expect(byName.get('lvextend present')?.ok).toBe(true);
  });

  it('flags a needs_check pool, missing deferred removal and missing binaries', async () => {
    const { h, sysBlockDir } = loopHost();
    h.sim.poolNeedsCheck = true;
    const checks = await h
      .backend(h.sim.runner(), { sysBlockDir, binaryPresent: (tool) => tool !== 'losetup' })
      .doctor();
    const failing = checks.filter((check) => !check.ok).map((check) => check.name);
    expect(failing).toEqual([
      'deferred removal enabled',
      'live-restore',
      'devicemapper grows can be held',
      'pool healthy',
      'losetup present',
    ]);
    const held = checks.find((check) => check.name === 'devicemapper grows can be held');
    expect(held?.detail).toMatch(/without deferred removal and deferred deletion/);
    expect(held?.fix).toMatch(/dm\.use_deferred_removal=true/);
  });

  it('asks the runner that runs the tools (config binaries) and names only commands that exist', async () => {
    const h = host();
    h.sim.poolMode = 'out_of_data_space';
    const runner = h.sim.runner();
    runner.allow('lvm', ['config', '--typeconfig', 'full', 'activation/thin_pool_autoextend_threshold'], {
      stdout: 'thin_pool_autoextend_threshold=100\n',
    });
    // what ExecaRunner.binaryPath answers with `binaries: { lvextend: '/opt/missing/lvextend' }`
    const asked: string[] = [];
    const withLookup = Object.assign(runner, {
      binaryPath: (tool: string) => {
        asked.push(tool);
        return tool === 'lvextend' ? null : `/usr/sbin/${tool}`;
      },
    });
    const checks = await h.backend(withLookup, { binaryPresent: undefined }).doctor();
    const lvextend = checks.find((check) => check.name === 'lvextend present');
    expect(lvextend).toMatchObject({ ok: false, severity: 'error' });
    expect(lvextend?.fix).toMatch(/binaries\.lvextend/);
    expect(asked).toContain('dmsetup');
    const pool = checks.find((check) => check.name === 'pool healthy');
    expect(pool?.ok).toBe(false);
    expect(pool?.fix).toMatch(/pool\.grow\.enabled/);
    expect(JSON.stringify(checks)).not.toMatch(/grow-pool/);
  });

  it('lists grown devices dockerd does not cache yet, held or not, with the fix', async () => {
    const h = host();
    const grower = expectSteps(h.sim.runner(), ...happyGrowSteps(h));
    await h.backend(grower).grow({ container: container(), fromBytes: GIB, toBytes: 3 * GIB, dryRun: false });
    const doctorOf = async () => {
      const runner = h.sim.runner();
      runner.allow('lvm', ['config', '--typeconfig', 'full', 'activation/thin_pool_autoextend_threshold'], {
        stdout: 'thin_pool_autoextend_threshold=100\n',
      });
      const checks = await h.backend(runner).doctor();
      return checks.find((check) => check.name === 'grown devices persistent')!;
    };
    const held = await doctorOf();
    expect(held).toMatchObject({ ok: false, severity: 'warn' });
    expect(held.detail).toMatch(
      /^c1 .*grown to 3221225472 bytes, dockerd has 1073741824\): grown; .*kernel hold/,
    );
    expect(held.fix).toMatch(/restart dockerd/);
    h.sim.remove('loop9');
    expect(await doctorOf()).toMatchObject({ ok: false, severity: 'error' });
    h.docker.current = container({
      graphDriverData: { DeviceId: '4', DeviceName: DEVICE, DeviceSize: String(3 * GIB) },
    });
    expect(await doctorOf()).toMatchObject({ ok: true, detail: 'dockerd caches every grown size' });
  });
});
