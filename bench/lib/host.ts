/**
 * The real-Docker fixture of the benchmarks: a loop-mounted btrfs with quotas and a private dockerd
 * on it (bench/lib/dockerd.ts), busybox containers created with `--storage-opt size=`, the
 * qgroup of each container found from Docker's layer store, and the shipped agent run as a child
 * process (`node dist/src/main.js run --config <tmp.yaml>`) whose JSON log lines are collected.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ShippedAgent, type AgentLogLine } from './agent-process.js';
import { TestDockerd, LoopBtrfs } from './dockerd.js';

const execFileAsync = promisify(execFile);

export interface BenchContainer {
  id: string;
  name: string;
  qgroupDir: string;
}

export class DockerHost {
  readonly btrfs: LoopBtrfs;
  dockerd!: TestDockerd;
  image = '';
  fsUuid = '';
  readonly workDir = mkdtempSync(path.join(tmpdir(), 'agbw-'));

  constructor(sizeBytes: number) {
    this.btrfs = new LoopBtrfs(sizeBytes);
  }

  async start(): Promise<void> {
    await this.btrfs.create();
    this.dockerd = new TestDockerd({ storageDriver: 'btrfs', dataRoot: this.btrfs.mountPoint });
    await this.dockerd.start();
    this.image = await this.dockerd.ensureBusyboxImage();
    const { stdout } = await execFileAsync('/bin/btrfs', ['filesystem', 'show', this.btrfs.mountPoint]);
    this.fsUuid = /uuid: (\S+)/.exec(stdout)?.[1] ?? '';
  }

  get dockerdPid(): number {
    return Number(readFileSync(this.dockerd.pidFile, 'utf8').trim());
  }

  docker(args: string[], timeoutMs = 120_000): Promise<string> {
    return this.dockerd.cli(args, timeoutMs);
  }

  /** Creates running containers `sleep 1d` with a size limit, `concurrency` at a time. */
  async createContainers(
    prefix: string,
    count: number,
    size: string,
    concurrency = 4,
  ): Promise<BenchContainer[]> {
    const names = Array.from({ length: count }, (_, index) => `${prefix}${index}`);
    const ids = new Map<string, string>();
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++] as string;
        const id = (
          await this.docker([
            'run',
            '-d',
            '--name',
            name,
            '--storage-opt',
            `size=${size}`,
            this.image,
            'sleep',
            '1d',
          ])
        ).trim();
        ids.set(name, id);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return this.resolveQgroups(names.map((name) => ({ name, id: ids.get(name) ?? '' })));
  }

  /** mount-id (layer store) -> subvolume id (`btrfs subvolume list`) -> sysfs qgroup directory. */
  async resolveQgroups(containers: Array<{ name: string; id: string }>): Promise<BenchContainer[]> {
    const { stdout } = await execFileAsync('/bin/btrfs', ['subvolume', 'list', this.btrfs.mountPoint], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const byPath = new Map<string, string>();
    for (const line of stdout.split('\n')) {
      const match = /^ID (\d+) .* path (\S+)$/.exec(line);
      if (match) byPath.set(match[2] ?? '', match[1] ?? '');
    }
    return containers.map(({ name, id }) => {
      const mountId = readFileSync(
        path.join(this.btrfs.mountPoint, 'image', 'btrfs', 'layerdb', 'mounts', id, 'mount-id'),
        'utf8',
      );
      const subvolumeId = byPath.get(`btrfs/subvolumes/${mountId}`);
      if (!subvolumeId) throw new Error(`no subvolume for ${name}`);
      return { id, name, qgroupDir: `/sys/fs/btrfs/${this.fsUuid}/qgroups/0_${subvolumeId}` };
    });
  }

  async removeAll(): Promise<void> {
    const ids = (await this.docker(['ps', '-aq'])).trim().split('\n').filter(Boolean);
    for (let index = 0; index < ids.length; index += 25) {
      await this.docker(['rm', '-f', ...ids.slice(index, index + 25)], 300_000);
    }
  }

  async stop(): Promise<void> {
    try {
      await this.dockerd?.destroy();
    } finally {
      await this.btrfs.destroy();
      rmSync(this.workDir, { recursive: true, force: true });
    }
  }
}

/** Live usage (referenced + reservations) and limit of a container's qgroup, from sysfs. */
export function qgroupLive(container: BenchContainer): { usedBytes: number; limitBytes: number } {
  const counter = (name: string) => Number(readFileSync(path.join(container.qgroupDir, name), 'utf8'));
  return {
    usedBytes:
      counter('referenced') +
      counter('rsv_data') +
      counter('rsv_meta_pertrans') +
      counter('rsv_meta_prealloc'),
    limitBytes: counter('max_referenced'),
  };
}

export type LogLine = AgentLogLine;

/** The shipped agent as a child process, configured for a benchmark run on the host. */
export class AgentProcess {
  private agent: ShippedAgent | null = null;

  constructor(
    private readonly host: DockerHost,
    private readonly name: string,
    private readonly extraConfig: string[] = [],
  ) {}

  get lines(): LogLine[] {
    return this.agent?.lines ?? [];
  }

  get stderr(): string {
    return this.agent?.stderr ?? '';
  }

  get pid(): number {
    return this.agent?.pid ?? 0;
  }

  async start(): Promise<void> {
    const dir = path.join(this.host.workDir, this.name);
    const configFile = path.join(this.host.workDir, `${this.name}.yaml`);
    writeFileSync(
      configFile,
      [
        'docker:',
        `  socketPath: ${this.host.dockerd.socketPath}`,
        'journal:',
        `  path: ${path.join(dir, 'journal.jsonl')}`,
        'metrics:',
        '  enabled: false',
        ...this.extraConfig,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    this.agent = new ShippedAgent(configFile);
    await this.agent.start();
  }

  find(msg: string, containerId: string, afterMs = 0): LogLine | undefined {
    return this.lines.find(
      (line) =>
        line.msg === msg && line.containerId === containerId && Date.parse(String(line.time)) >= afterMs,
    );
  }

  async stop(): Promise<void> {
    await this.agent?.stop();
  }
}
