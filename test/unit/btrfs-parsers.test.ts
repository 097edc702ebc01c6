/**
 * The btrfs parsers on outputs recorded from real btrfs-progs 6.2 (test/fixtures/btrfs/record.sh).
 */
import { describe, expect, it } from 'vitest';
import { parseFilesystemUuid } from '../../src/storage/btrfs/parse-filesystem-show.js';
import { isQuotasDisabledError, parseQgroupShow } from '../../src/storage/btrfs/parse-qgroup-show.js';
import {
  dockerSubvolumesByMountId,
  parseSubvolumeList,
} from '../../src/storage/btrfs/parse-subvolume-list.js';
import { recorded, recordedContainers } from './btrfs-fixtures.js';

const ids = recordedContainers();

describe('parseQgroupShow (btrfs qgroup show --raw -re)', () => {
  it('reads every qgroup with raw bytes, limits and paths', () => {
    const rows = parseQgroupShow(recorded('qgroup-show').stdout);
    const limited = rows.find((row) => row.path === `btrfs/subvolumes/${ids.limitedMountId}`);
    expect(limited).toMatchObject({
      qgroupId: { level: 0 },
      maxReferencedBytes: 64 * 1024 ** 2,
      maxExclusiveBytes: null,
    });
    expect(limited?.referencedBytes).toBeGreaterThan(40 * 1024 ** 2);
    const unlimited = rows.find((row) => row.path === `btrfs/subvolumes/${ids.unlimitedMountId}`);
    expect(unlimited?.maxReferencedBytes).toBeNull();
    expect(rows.find((row) => row.qgroupKey === '0/5')?.path).toBe('<toplevel>');
    // Docker limits the -init layer too; it is a separate qgroup
    expect(rows.filter((row) => row.path?.includes(ids.limitedMountId))).toHaveLength(2);
  });

  it('keeps stale qgroups of deleted subvolumes as rows with path <stale>', () => {
    const rows = parseQgroupShow(recorded('qgroup-show-before-commit').stdout);
    expect(rows.some((row) => row.path === '<stale>')).toBe(true);
  });

  it('shows the limit btrfs qgroup limit set', () => {
    const after = parseQgroupShow(recorded('qgroup-show-after-limit').stdout);
    const limited = after.find((row) => row.path === `btrfs/subvolumes/${ids.limitedMountId}`);
    expect(limited?.maxReferencedBytes).toBe(83886080);
  });

  it('refuses human-readable sizes instead of guessing', () => {
    expect(() => parseQgroupShow(recorded('qgroup-show-human').stdout)).toThrow(/not a raw byte count/);
  });

  it('accepts output without the Path column (older btrfs-progs)', () => {
    const withoutPath = recorded('qgroup-show')
      .stdout.split('\n')
      .map((line) => line.replace(/\s+(Path|----|<toplevel>|<stale>|btrfs\/subvolumes\/\S+)\s*$/, ''))
      .join('\n');
    const rows = parseQgroupShow(withoutPath);
    expect(rows.length).toBe(parseQgroupShow(recorded('qgroup-show').stdout).length);
    expect(rows.every((row) => row.path === null)).toBe(true);
  });

  it('refuses an unexpected column layout', () => {
    expect(() => parseQgroupShow('Qgroupid    Referenced    Exclusive   Path\n0/5  1  1  x\n')).toThrow(
      /unexpected header/,
    );
    expect(() => parseQgroupShow('')).toThrow(/printed nothing/);
  });

  it('recognises the quotas-disabled error of the real tool', () => {
    const disabled = recorded('qgroup-show-disabled');
    expect(disabled.exitCode).toBe(1);
    expect(isQuotasDisabledError(disabled.stderr)).toBe(true);
    expect(isQuotasDisabledError(recorded('qgroup-limit-missing').stderr)).toBe(false);
  });
});

describe('parseSubvolumeList', () => {
  it('maps Docker layer mount ids to subvolume ids, -init layers left out', () => {
    const rows = parseSubvolumeList(recorded('subvolume-list').stdout);
    expect(rows.length).toBe(5);
    const byMountId = dockerSubvolumesByMountId(rows);
    const limitedRow = rows.find((row) => row.path === `btrfs/subvolumes/${ids.limitedMountId}`);
    expect(byMountId.get(ids.limitedMountId)).toBe(limitedRow?.subvolumeId);
    expect(byMountId.has(`${ids.limitedMountId}-init`)).toBe(false);
    expect(byMountId.size).toBe(3);
  });

  it('finds layers of a data root below the top level, and marks duplicates ambiguous', () => {
    const hash = 'a'.repeat(64);
    const rows = parseSubvolumeList(
      `ID 300 gen 1 top level 5 path @/var/lib/docker/btrfs/subvolumes/${hash}\n` +
        `ID 301 gen 1 top level 5 path other/btrfs/subvolumes/${'b'.repeat(64)}\n` +
        `ID 302 gen 1 top level 5 path srv/docker2/btrfs/subvolumes/${'b'.repeat(64)}\n` +
        `ID 303 gen 1 top level 5 path home/notbtrfs/subvolumes-${'c'.repeat(64)}\n`,
    );
    const byMountId = dockerSubvolumesByMountId(rows);
    expect(byMountId.get(hash)).toBe(300);
    expect(byMountId.get('b'.repeat(64))).toBeNull();
    expect(byMountId.has('c'.repeat(64))).toBe(false);
  });

  it('refuses lines it does not understand', () => {
    expect(() => parseSubvolumeList('something else\n')).toThrow(/unexpected line/);
  });
});

describe('parseFilesystemUuid', () => {
  it('reads the filesystem uuid (the sysfs directory name)', () => {
    expect(parseFilesystemUuid(recorded('filesystem-show').stdout)).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    expect(() => parseFilesystemUuid('Label: none\n')).toThrow(/expected one filesystem uuid/);
  });
});

describe('btrfs-progs 6.2 JSON output', () => {
  it('aborts once a qgroup has a limit (why the parser reads text)', () => {
    const json = recorded('qgroup-show-json');
    expect(json.exitCode).toBe(134);
    expect(json.stderr).toContain('unknown unit base');
  });
});
