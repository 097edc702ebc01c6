/**
 * Reads the btrfs outputs recorded by test/fixtures/btrfs/record.sh: '# ' header lines (command,
 * versions, date, '# exit: N'), then stdout verbatim; stderr in <name>.stderr.txt.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ContainerInfo } from '../../src/docker/model.js';
import { mapContainerInspect } from '../../src/docker/mapping.js';
import { parseFilesystemUuid } from '../../src/storage/btrfs/parse-filesystem-show.js';
import { fixture } from '../support/scripted-runner.js';

export interface RecordedCommand {
  command: string;
  stdout: string;
  stderr: string;
  exitCode: number;
}

export function recorded(name: string): RecordedCommand {
  const lines = fixture(`btrfs/${name}.txt`).split('\n');
  let command = '';
  let exitCode = 0;
  let index = 0;
  for (; index < lines.length && lines[index]?.startsWith('# '); index += 1) {
    const line = lines[index] ?? '';
    if (line.startsWith('# command: ')) command = line.slice('# command: '.length);
    if (line.startsWith('# exit: ')) exitCode = Number(line.slice('# exit: '.length));
  }
  const stderrFile = `btrfs/${name}.stderr.txt`;
  const stderr = existsSync(path.resolve(import.meta.dirname, '..', 'fixtures', stderrFile))
    ? fixture(stderrFile)
    : '';
  return { command, stdout: lines.slice(index).join('\n'), stderr, exitCode };
}

export interface RecordedContainers {
  limitedId: string;
  limitedMountId: string;
  unlimitedId: string;
  unlimitedMountId: string;
}

export function recordedContainers(): RecordedContainers {
  const fields = new Map(
    fixture('btrfs/containers.txt')
      .split('\n')
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)] as const),
  );
  const get = (key: string) => {
    const value = fields.get(key);
    if (!value) throw new Error(`containers.txt has no ${key}`);
    return value;
  };
  return {
    limitedId: get('limited container'),
    limitedMountId: get('limited mount-id'),
    unlimitedId: get('unlimited container'),
    unlimitedMountId: get('unlimited mount-id'),
  };
}

/** The two recorded containers, mapped from the real `docker inspect` JSON. */
export function recordedContainerInfos(): { limited: ContainerInfo; unlimited: ContainerInfo } {
  const ids = recordedContainers();
  const inspected = (JSON.parse(fixture('btrfs/docker-inspect.json')) as unknown[]).map(mapContainerInspect);
  const find = (id: string) => {
    const info = inspected.find((container) => container.id === id);
    if (!info) throw new Error(`docker-inspect.json has no ${id}`);
    return info;
  };
  return { limited: find(ids.limitedId), unlimited: find(ids.unlimitedId) };
}

/** name=value lines of a recorded sysfs qgroup directory. */
export function recordedSysfs(name: string): Map<string, string> {
  return new Map(
    fixture(`btrfs/${name}.txt`)
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const),
  );
}

/** The recorded filesystem's uuid (names its sysfs directory). */
export const FS_UUID = parseFilesystemUuid(recorded('filesystem-show').stdout);

const fakeHostDirs: string[] = [];

/** Removes every directory fakeHost() made (call from afterEach). */
export function removeFakeHosts(): void {
  for (const dir of fakeHostDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * A throwaway data root laid out like Docker's (layer store mount ids, quota files) and a sysfs
 * tree holding the recorded qgroup counters, for the backend's unit tests.
 */
export function fakeHost(options: { sysfs?: string; limitedSubvolumeId: number }): {
  dataRoot: string;
  sysfsRoot: string;
  quotaFile: string;
} {
  const ids = recordedContainers();
  const base = mkdtempSync(path.join(tmpdir(), 'agbunit-'));
  fakeHostDirs.push(base);
  const dataRoot = path.join(base, 'docker');
  for (const [id, mountId] of [
    [ids.limitedId, ids.limitedMountId],
    [ids.unlimitedId, ids.unlimitedMountId],
  ] as const) {
    const dir = path.join(dataRoot, 'image', 'btrfs', 'layerdb', 'mounts', id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'mount-id'), mountId);
    mkdirSync(path.join(dataRoot, 'btrfs', 'subvolumes', mountId), { recursive: true });
  }
  mkdirSync(path.join(dataRoot, 'btrfs', 'quotas'), { recursive: true });
  const quotaFile = path.join(dataRoot, 'btrfs', 'quotas', ids.limitedMountId);
  writeFileSync(quotaFile, String(64 * 1024 ** 2));
  const sysfsRoot = path.join(base, 'sys');
  if (options.sysfs) {
    const values = recordedSysfs(options.sysfs);
    const qgroupDir = path.join(sysfsRoot, FS_UUID, 'qgroups', `0_${options.limitedSubvolumeId}`);
    mkdirSync(qgroupDir, { recursive: true });
    for (const [name, value] of values) {
      const file = name.startsWith('qgroups/')
        ? path.join(sysfsRoot, FS_UUID, name)
        : path.join(qgroupDir, name);
      writeFileSync(file, `${value}\n`);
    }
  }
  return { dataRoot, sysfsRoot, quotaFile };
}
