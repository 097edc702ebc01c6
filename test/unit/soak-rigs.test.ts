/**
 * The soak's per-backend seam (soak/rigs/): the rigs are made by name with the storage dockerd
 * needs, the rigs' tool runner keeps the project's runner rules (LC_ALL=C, a fixed PATH, a timeout
 * that kills), and the overlay-xfs leftover invariant reports a removed container's project whose
 * limit changed after the removal (and only that).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { soakRunName } from '../../soak/driver.js';
import { checkLimitsAfterRemoval } from '../../soak/invariants.js';
import { BACKENDS, createRig } from '../../soak/rigs/index.js';
import { runTool } from '../../soak/rigs/tool.js';

const MiB = 1024 ** 2;
const workDir = mkdtempSync(path.join(tmpdir(), 'soak-rigs-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

describe('soak rigs', () => {
  it('makes each backend by name, with its storage driver on a data root of its own', () => {
    const drivers = BACKENDS.map((backend) => {
      const rig = createRig(backend, { poolBytes: 4 * 1024 ** 3, workDir });
      expect(rig.backend).toBe(backend);
      expect(rig.dockerd.dataRoot.startsWith(`${workDir}/`)).toBe(true);
      return rig.dockerd.storageDriver;
    });
    expect(drivers).toEqual(['btrfs', 'overlay2']);
  });

  it('names runs as before on btrfs and by backend on the others', () => {
    expect(soakRunName({ backend: 'btrfs', seed: 6, agent: true })).toBe('6');
    expect(soakRunName({ backend: 'btrfs', seed: 6, agent: false })).toBe('6-control');
    expect(soakRunName({ backend: 'overlay-xfs', seed: 6, agent: false })).toBe('overlay-xfs-6-control');
  });
});

describe('the rigs tool runner', () => {
  it('runs with LC_ALL=C and a fixed PATH, nothing else from the environment', async () => {
    const env = (await runTool('/usr/bin/env', [], 5_000)).trim().split('\n').sort();
    expect(env).toEqual(['LANG=C', 'LC_ALL=C', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  it('kills a tool at its timeout and names the command', async () => {
    await expect(runTool('/usr/bin/sleep', ['5'], 100)).rejects.toThrow(
      /\/usr\/bin\/sleep 5 killed after 100 ms/,
    );
  });

  it('rejects on a non-zero exit with the tool stderr', async () => {
    await expect(runTool('/usr/bin/ls', ['/no/such/dir'], 5_000)).rejects.toThrow(
      /No such file or directory/,
    );
  });
});

describe('leak invariant: limits of removed XFS projects', () => {
  const removed = [
    { containerId: 'a'.repeat(64), projectId: 3, limitAfterRemovalBytes: 96 * MiB },
    { containerId: 'b'.repeat(64), projectId: 4, limitAfterRemovalBytes: null },
  ];

  it('a project that kept its limit (or stayed without one) is no leak', () => {
    expect(checkLimitsAfterRemoval(1, removed, new Map([[3, 96 * MiB]]))).toEqual([]);
  });

  it('a limit raised or set after the removal is a leak: the agent grew a container that was gone', () => {
    const found = checkLimitsAfterRemoval(
      1,
      removed,
      new Map([
        [3, 144 * MiB],
        [4, 32 * MiB],
      ]),
    );
    expect(found.map((violation) => violation.invariant)).toEqual(['leak', 'leak']);
    expect(found[0]?.detail).toContain(
      `XFS project 3 of removed container aaaaaaaaaaaa: hard limit ${144 * MiB} now`,
    );
    expect(found[1]?.detail).toContain('none after its removal');
  });
});
