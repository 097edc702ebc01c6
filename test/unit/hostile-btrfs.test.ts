/**
 * Hostile variants of the recorded btrfs outputs (test/fixtures/btrfs, data-filesystem/btrfs):
 * each parser refuses with a ToolOutputError or reads exactly what the real output says.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
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
