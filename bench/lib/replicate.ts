/**
 * Replicated inputs for the in-process benchmarks: REAL recorded outputs scaled to N containers.
 *
 * - btrfs: test/fixtures/btrfs/ (recorded by test/fixtures/btrfs/record.sh on this project's
 *   host): the `btrfs qgroup show --raw -re` rows and `btrfs subvolume list` lines of the limited
 *   container (its `-init` and its own subvolume) are repeated with distinct subvolume ids and mount
 *   ids; the real `docker inspect` JSON is repeated with distinct container ids; the recorded sysfs
 *   qgroup counters are written once per container under a temporary sysfs root; Docker's layer
 *   store (`image/btrfs/layerdb/mounts/<id>/mount-id`) is a temporary directory tree.
 * - devicemapper: the reference captures (/work/shared/reference/real-outputs/docker-dm-lvm/
 *   13-container.txt), kept so that results stay comparable with earlier runs (the project's own
 *   recordings, test/fixtures/docker-dm-lvm, are what test/unit/dm-parse.test.ts reads):
 *   `dmsetup table`, `dmsetup status`, the `dmsetup info -c` columns (in the `--separator ; -o
 *   name,major,minor,attr,open,uuid` form the backend asks for), the mountinfo line and the
 *   GraphDriver JSON of a running container, repeated with distinct device names, device ids and
 *   minor numbers; the container lines are built by bench/lib/dm-lines.ts (shared with the unit
 *   tests' simulated kernel). The per-container statfs is REAL: one statfs(2) per container on a
 *   directory of the temporary tree.
 *
 * The fake runner answers from these texts and counts every process the agent would have started.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ContainerInfo, DockerInfo } from '../../src/docker/model.js';
import { mapContainerInspect } from '../../src/docker/mapping.js';
import type { CommandResult, CommandRunner, CommandSpec } from '../../src/exec/runner.js';
import { parseFilesystemUuid } from '../../src/storage/btrfs/parse-filesystem-show.js';
import * as dmLines from './dm-lines.js';
import { REPO_ROOT } from './repo-root.js';

/** 64 hex digits, distinct per (kind, index), stable across runs. */
export function hexId(kind: string, index: number): string {
  return createHash('sha256').update(`${kind}-${index}`).digest('hex');
}

/** A recorded btrfs fixture: '# ' header lines, then stdout verbatim. */
export function recordedStdout(name: string): string {
  const text = readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'btrfs', `${name}.txt`), 'utf8');
  const lines = text.split('\n');
  let index = 0;
  while (index < lines.length && lines[index]?.startsWith('# ')) index += 1;
  return lines.slice(index).join('\n');
}

function fixtureText(relative: string): string {
  return readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', relative), 'utf8');
}

/** Counts processes (and per tool) and answers each command with a replicated real output. */
export class CountingRunner implements CommandRunner {
  processes = 0;
  readonly byTool = new Map<string, number>();

  constructor(private readonly answer: (spec: CommandSpec) => string) {}

  async run(spec: CommandSpec): Promise<CommandResult> {
    this.processes += 1;
    const key = `${spec.tool} ${spec.args[0] ?? ''}`;
    this.byTool.set(key, (this.byTool.get(key) ?? 0) + 1);
    return { stdout: this.answer(spec), stderr: '', exitCode: 0, durationMs: 0 };
  }
}

/** What a replicated world gives the benchmark: inputs for the real backend and reconciler. */
export interface World {
  driver: 'btrfs' | 'devicemapper';
  containers: ContainerInfo[];
  dockerInfo: DockerInfo;
  runner: CountingRunner;
  /** Raw `docker inspect` JSON per container id (the fake Docker API answers with it). */
  inspectJson: Map<string, unknown>;
  /** Options for the backend factory (sysfs root, mountinfo path...). */
  backendOptions: Record<string, unknown>;
  stateDir: string;
}

// ---------------------------------------------------------------- btrfs

interface BtrfsTemplate {
  headerLines: string[];
  topLevelRow: string;
  initRow: string;
  mainRow: string;
  initSubvol: string;
  mainSubvol: string;
  mountId: string;
  initQgroupId: number;
  mainQgroupId: number;
  inspect: Record<string, unknown>;
  sysfs: Array<[string, string]>;
  filesystemShow: string;
}

function btrfsTemplate(): BtrfsTemplate {
  const fields = new Map(
    fixtureText('btrfs/containers.txt')
      .split('\n')
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)] as const),
  );
  const containerId = fields.get('limited container');
  const mountId = fields.get('limited mount-id');
  if (!containerId || !mountId) throw new Error('test/fixtures/btrfs/containers.txt: no limited container');
  const qgroupLines = recordedStdout('qgroup-show')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const find = (lines: string[], suffix: string) => {
    const line = lines.find((candidate) => candidate.trimEnd().endsWith(suffix));
    if (!line) throw new Error(`recorded output has no line ending with ${suffix}`);
    return line;
  };
  const initRow = find(qgroupLines, `${mountId}-init`);
  const mainRow = find(qgroupLines, mountId);
  const subvolLines = recordedStdout('subvolume-list')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const inspected = JSON.parse(fixtureText('btrfs/docker-inspect.json')) as Array<Record<string, unknown>>;
  const inspect = inspected.find((entry) => entry['Id'] === containerId);
  if (!inspect) throw new Error('docker-inspect.json has no limited container');
  const sysfs = recordedStdout('sysfs-qgroup-before-commit')
    .split('\n')
    .filter((line) => line.includes('=') && !line.startsWith('qgroups/'))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as [string, string]);
  return {
    headerLines: qgroupLines.slice(0, 2),
    topLevelRow: find(qgroupLines, '<toplevel>'),
    initRow,
    mainRow,
    initSubvol: find(subvolLines, `${mountId}-init`),
    mainSubvol: find(subvolLines, mountId),
    mountId,
    initQgroupId: Number(/^0\/(\d+)/.exec(initRow.trim())?.[1]),
    mainQgroupId: Number(/^0\/(\d+)/.exec(mainRow.trim())?.[1]),
    inspect,
    sysfs,
    filesystemShow: recordedStdout('filesystem-show'),
  };
}

function replaceQgroupId(line: string, from: number, to: number): string {
  return line.replace(new RegExp(`(^\\s*)0/${from}(\\s)`), `$10/${to}$2`);
}

function replaceSubvolId(line: string, from: number, to: number): string {
  return line.replace(new RegExp(`^ID ${from} `), `ID ${to} `);
}

/** Replicated `btrfs qgroup show --raw -re` and `btrfs subvolume list` outputs for N containers. */
export function btrfsOutputs(n: number): { qgroupShow: string; subvolumeList: string; mountIds: string[] } {
  const t = btrfsTemplate();
  const qgroup = [...t.headerLines, t.topLevelRow];
  const subvols: string[] = [];
  const mountIds: string[] = [];
  for (let index = 0; index < n; index += 1) {
    const mountId = hexId('mount', index);
    mountIds.push(mountId);
    const initId = 1000 + 2 * index;
    const mainId = initId + 1;
    qgroup.push(replaceQgroupId(t.initRow, t.initQgroupId, initId).replaceAll(t.mountId, mountId));
    qgroup.push(replaceQgroupId(t.mainRow, t.mainQgroupId, mainId).replaceAll(t.mountId, mountId));
    subvols.push(replaceSubvolId(t.initSubvol, t.initQgroupId, initId).replaceAll(t.mountId, mountId));
    subvols.push(replaceSubvolId(t.mainSubvol, t.mainQgroupId, mainId).replaceAll(t.mountId, mountId));
  }
  return { qgroupShow: `${qgroup.join('\n')}\n`, subvolumeList: `${subvols.join('\n')}\n`, mountIds };
}

export function btrfsWorld(n: number, baseDir: string): World {
  const t = btrfsTemplate();
  const dataRoot = path.join(baseDir, 'docker');
  const sysfsRoot = path.join(baseDir, 'sysfs');
  const stateDir = path.join(baseDir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const fsUuid = parseFilesystemUuid(t.filesystemShow);
  const { qgroupShow, subvolumeList, mountIds } = btrfsOutputs(n);
  const containers: ContainerInfo[] = [];
  const inspectJson = new Map<string, unknown>();
  for (let index = 0; index < n; index += 1) {
    const id = hexId('container', index);
    const raw = { ...t.inspect, Id: id, Name: `/bench-${index}` };
    inspectJson.set(id, raw);
    containers.push(mapContainerInspect(raw));
    const layerDir = path.join(dataRoot, 'image', 'btrfs', 'layerdb', 'mounts', id);
    mkdirSync(layerDir, { recursive: true });
    writeFileSync(path.join(layerDir, 'mount-id'), mountIds[index] ?? '');
    const qgroupDir = path.join(sysfsRoot, fsUuid, 'qgroups', `0_${1000 + 2 * index + 1}`);
    mkdirSync(qgroupDir, { recursive: true });
    for (const [name, value] of t.sysfs) writeFileSync(path.join(qgroupDir, name), `${value}\n`);
  }
  const runner = new CountingRunner((spec) => {
    const sub = `${spec.args[0]} ${spec.args[1]}`;
    if (spec.tool === 'btrfs' && sub === 'qgroup show') return qgroupShow;
    if (spec.tool === 'btrfs' && sub === 'subvolume list') return subvolumeList;
    if (spec.tool === 'btrfs' && sub === 'filesystem show') return t.filesystemShow;
    throw new Error(`bench: unexpected command ${spec.tool} ${spec.args.join(' ')}`);
  });
  return {
    driver: 'btrfs',
    containers,
    dockerInfo: {
      serverVersion: '20.10.24+dfsg1',
      apiVersion: '1.41',
      driver: 'btrfs',
      driverStatus: [['Btrfs', '']],
      dockerRootDir: dataRoot,
      liveRestoreEnabled: false,
      containersRunning: n,
    },
    runner,
    inspectJson,
    backendOptions: { sysfsRoot },
    stateDir,
  };
}

// ---------------------------------------------------------------- devicemapper

/**
 * docker-dm-lvm/13-container.txt of the reference captures: the container's device (name, table,
 * status, info) is built per replica with bench/lib/dm-lines.ts, the builders the unit tests'
 * simulated kernel uses; the pool's lines (identical in every replica) stay verbatim.
 */
const DM_HASH = '83cf663f6a72c24c6e6a005fd35d6a5448236a2a76ca69d512cbe51fc53591b5';
const DM_DEVICE = `docker-254:0-15931-${DM_HASH}`;
/** Docker's thin device of the capture: 1 GiB, 2097152 sectors. */
const DM_DEVICE_SECTORS = 2097152;
const DM_POOL_TABLE = `${dmLines.dmTableLine('docker-thinpool', '0 8380416 thin-pool 253:0 253:1 1024 0 1 skip_block_zeroing')}
docker-thinpool_tdata: 0 8380416 linear 254:16 2048
docker-thinpool_tmeta: 0 163840 linear 254:16 8382464
`;
const DM_POOL_STATUS = `${dmLines.thinPoolStatusLine('docker-thinpool', dmLines.REFERENCE_LVM_POOL)}
docker-thinpool_tdata: 0 8380416 linear 
docker-thinpool_tmeta: 0 163840 linear 
`;
/** `dmsetup info -c` columns of the capture, in the backend's `-o name,major,minor,attr,open,uuid` form. */
const DM_POOL_INFO = `docker-thinpool;253;2;L--w;2;LVM-LPTZpzC5p0fhkU3m9HPVFUVFpiWZIcycWK0R5SAPxR39WFvm0hIxkhtYI21rDxhN-tpool
docker-thinpool_tdata;253;1;L--w;1;LVM-LPTZpzC5p0fhkU3m9HPVFUVFpiWZIcycokEkShjwHfYjW1UwJEFW7qbBgQ51UbpW-tdata
docker-thinpool_tmeta;253;0;L--w;1;LVM-LPTZpzC5p0fhkU3m9HPVFUVFpiWZIcycm9HecltRM3m7huOHdrOrc7vjiaKiDMFO-tmeta
`;
const DM_MOUNTINFO_LINE = `33 32 253:3 / /var/lib/docker/devicemapper/mnt/${DM_HASH} rw,relatime shared:2 - xfs /dev/mapper/${DM_DEVICE} rw,nouuid,attr2,inode64,logbufs=8,logbsize=32k,sunit=1024,swidth=1024,noquota`;
const DM_GRAPH_DRIVER = `{"Data":{"DeviceId":"4","DeviceName":"${DM_DEVICE}","DeviceSize":"1073741824"},"Name":"devicemapper"}`;

export function dmOutputs(
  n: number,
  dataRoot = '/var/lib/docker',
): { table: string; status: string; info: string; mountinfo: string; hashes: string[] } {
  const table: string[] = [];
  const status: string[] = [];
  const info: string[] = [];
  const mounts: string[] = [];
  const hashes: string[] = [];
  for (let index = 0; index < n; index += 1) {
    const hash = hexId('dmhash', index);
    hashes.push(hash);
    const device = `docker-254:0-15931-${hash}`;
    const minor = 10 + index;
    const deviceId = 10 + index;
    table.push(dmLines.dmTableLine(device, `0 ${DM_DEVICE_SECTORS} thin 253:2 ${deviceId}`));
    status.push(
      dmLines.thinStatusLine(
        device,
        DM_DEVICE_SECTORS,
        dmLines.REFERENCE_THIN_MAPPED_SECTORS,
        DM_DEVICE_SECTORS - 1,
      ),
    );
    info.push(dmLines.dmInfoLine(device, { major: 253, minor, open: 1, uuid: '' }));
    mounts.push(
      DM_MOUNTINFO_LINE.replaceAll(DM_HASH, hash)
        .replace('253:3', `253:${minor}`)
        .replace(/^33 /, `${100 + index} `)
        .replace('/var/lib/docker', dataRoot),
    );
  }
  return {
    table: `${table.join('\n')}\n${DM_POOL_TABLE}`,
    status: `${status.join('\n')}\n${DM_POOL_STATUS}`,
    info: `${info.join('\n')}\n${DM_POOL_INFO}`,
    mountinfo: `${mounts.join('\n')}\n`,
    hashes,
  };
}

export function dmWorld(n: number, baseDir: string): World {
  const dataRoot = path.join(baseDir, 'docker');
  const stateDir = path.join(baseDir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const outputs = dmOutputs(n, dataRoot);
  const mountinfoPath = path.join(baseDir, 'mountinfo');
  writeFileSync(mountinfoPath, outputs.mountinfo);
  const t = btrfsTemplate();
  const containers: ContainerInfo[] = [];
  const inspectJson = new Map<string, unknown>();
  const graphDriver = JSON.parse(DM_GRAPH_DRIVER) as { Data: Record<string, string>; Name: string };
  for (let index = 0; index < n; index += 1) {
    const id = hexId('container', index);
    const hash = outputs.hashes[index] ?? '';
    const hostConfig = { ...(t.inspect['HostConfig'] as Record<string, unknown>), StorageOpt: null };
    const raw = {
      ...t.inspect,
      Id: id,
      Name: `/bench-${index}`,
      Driver: 'devicemapper',
      HostConfig: hostConfig,
      GraphDriver: {
        Name: 'devicemapper',
        Data: {
          ...graphDriver.Data,
          DeviceId: String(10 + index),
          DeviceName: `docker-254:0-15931-${hash}`,
        },
      },
    };
    inspectJson.set(id, raw);
    containers.push(mapContainerInspect(raw));
    // the mount point exists so that the backend's statfs is a real syscall on a real directory
    mkdirSync(path.join(dataRoot, 'devicemapper', 'mnt', hash), { recursive: true });
  }
  mkdirSync(path.join(dataRoot, 'devicemapper', 'metadata'), { recursive: true });
  const runner = new CountingRunner((spec) => {
    if (spec.tool !== 'dmsetup') throw new Error(`bench: unexpected command ${spec.tool}`);
    if (spec.args[0] === 'table' && spec.args.length === 1) return outputs.table;
    if (spec.args[0] === 'status') return outputs.status;
    if (spec.args[0] === 'info' && spec.args[1] === '-c') return outputs.info;
    throw new Error(`bench: unexpected command dmsetup ${spec.args.join(' ')}`);
  });
  return {
    driver: 'devicemapper',
    containers,
    dockerInfo: {
      serverVersion: '20.10.24+dfsg1',
      apiVersion: '1.41',
      driver: 'devicemapper',
      driverStatus: dmLines.REFERENCE_LVM_DRIVER_STATUS,
      dockerRootDir: dataRoot,
      liveRestoreEnabled: true,
      containersRunning: n,
    },
    runner,
    inspectJson,
    backendOptions: { mountinfoPath },
    stateDir,
  };
}
