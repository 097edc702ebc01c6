/**
 * Hostile variants of the recorded btrfs outputs (test/fixtures/btrfs, data-filesystem/btrfs):
 * each parser refuses with a ToolOutputError or reads exactly what the real output says. And a
 * pass over output that does not parse skips with the reason and grows nothing.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/agent/journal.js';
import { Reconciler } from '../../src/agent/reconciler.js';
import { parseConfigObject } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { ToolOutputError } from '../../src/storage/tool-output-error.js';
import { FakeBackend, FakeClock, GiB } from '../support/fake-backend.js';
import { fakeContainer, FakeInventory } from '../support/fake-inventory.js';
import { tempDir } from '../support/temp-dir.js';
import { parseFilesystemUuid } from '../../src/storage/btrfs/parse-filesystem-show.js';
import { parseQgroupShow } from '../../src/storage/btrfs/parse-qgroup-show.js';
import { parseSubvolumeList } from '../../src/storage/btrfs/parse-subvolume-list.js';
import { parseBtrfsDevices } from '../../src/storage/data-filesystem/fs-grow.js';
import { REPO_ROOT } from '../support/repo-root.js';
import { recorded } from './btrfs-fixtures.js';
import { expectHostileSafe } from './hostile-inputs.js';

describe('hostile btrfs outputs', () => {
  for (const name of ['qgroup-show', 'qgroup-show-after-limit', 'qgroup-show-before-commit']) {
    it(`btrfs qgroup show (${name})`, () => {
      expectHostileSafe(parseQgroupShow, recorded(name).stdout, { freeTextLastField: true });
    });
  }

  it('btrfs subvolume list', () => {
    expectHostileSafe(parseSubvolumeList, recorded('subvolume-list').stdout, { freeTextLastField: true });
  });

  it('btrfs filesystem show (uuid)', () => {
    expectHostileSafe(parseFilesystemUuid, recorded('filesystem-show').stdout);
  });

  it('btrfs filesystem show (devices of the data filesystem)', () => {
    const real = readFileSync(
      path.join(REPO_ROOT, 'test/fixtures/data-filesystem/btrfs/filesystem-show.txt'),
      'utf8',
    );
    expectHostileSafe(parseBtrfsDevices, real);
  });
});

describe('a pass over output that does not parse', () => {
  it('skips each container with the reason and grows nothing (never acts on a misread)', async () => {
    const clock = new FakeClock();
    const backend = new FakeBackend(clock, { driver: 'btrfs', pool: null });
    const container = fakeContainer({ storageDriver: 'btrfs' });
    const inventory = new FakeInventory([container]);
    // 95% full: a pass that could read it would grow it (the control below)
    backend.addContainer(container.id, { sizeBytes: 10 * GiB, usedBytes: 9.5 * GiB });
    const reconciler = new Reconciler({
      inventory,
      backend,
      config: parseConfigObject({}, 'test'),
      journal: new Journal({
        path: path.join(tempDir('hostile-pass'), 'journal.jsonl'),
        maxSizeBytes: 1 << 20,
        keep: 1,
      }),
      clock,
      logger: silentLogger(),
    });
    let hostile: unknown = null;
    try {
      parseQgroupShow(recorded('qgroup-show').stdout.replace(/\d+/g, '99999999999999999999'));
    } catch (error) {
      hostile = error;
    }
    expect(hostile).toBeInstanceOf(ToolOutputError);
    backend.observeError = hostile as Error;
    const refused = await reconciler.runPass();
    expect(refused.probes.find((probe) => !probe.ok)?.error).toContain((hostile as Error).message);
    expect(refused.containers).toMatchObject([{ containerId: container.id, decision: { kind: 'skip' } }]);
    expect(refused.containers[0]?.outcome).toBeUndefined();
    expect(backend.state(container.id).sizeBytes).toBe(10 * GiB);

    backend.observeError = null;
    const read = await reconciler.runPass();
    expect(read.containers[0]?.outcome).toMatchObject({ kind: 'grown' });
  });
});
