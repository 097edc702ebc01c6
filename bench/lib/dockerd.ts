/**
 * A private, real dockerd (Debian's docker.io) for integration tests and the benchmarks: its own
 * socket, data-root, exec-root and pidfile under a temporary directory, so runs never clash with
 * each other or with a Docker already on the machine. `--iptables=false --bridge=none`: no
 * networking is needed. Also the loop-mounted btrfs with quotas it runs on, and a busybox-static
 * image imported without a registry. It lives with the benchmarks so their build never reaches
 * into test code; test/support/dockerd.ts re-exports it.
 *
 * Test and benchmark code may run processes directly (it is not the agent); the agent itself only
 * uses src/exec/runner.ts.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, openSync, existsSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './repo-root.js';

const execFileAsync = promisify(execFile);

export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKER_CLI = '/usr/bin/docker';

export interface DockerdOptions {
  /** Storage driver (default: the daemon's choice, vfs/overlay2). */
  storageDriver?: string;
  /** Data root (default: a fresh directory under the base dir). */
  dataRoot?: string;
  /** Extra daemon arguments. */
  extraArgs?: string[];
  /** Reuse this base dir (socket, exec-root, pidfile, log) so a restart keeps the same socket. */
  baseDir?: string;
  /**
   * Run dockerd from this engine root (test/engines/build-root.sh) in its own mount namespace via
   * test/engines/run-dockerd.sh, instead of the host's /usr/sbin/dockerd. Default: the root named by
   * $AUTOGROW_TEST_ENGINE (sid | trixie), else the host's. `null` forces the host's.
   */
  engineRoot?: string | null;
  /** Listen on these addresses too (e.g. tcp://127.0.0.1:port), besides the unix socket. */
  extraHosts?: string[];
}

const ENGINES_DIR = path.join(REPO_ROOT, 'test', 'engines');
/** test/engines/run-dockerd.sh: dockerd from an engine root, pivoted into in a private mount namespace. */
export const RUN_ENGINE_DOCKERD = path.join(ENGINES_DIR, 'run-dockerd.sh');

/** The current engines the tests run beside the host's 20.10 (test/engines/build-root.sh). */
export const CURRENT_ENGINES = ['trixie', 'sid'] as const;
export type CurrentEngine = (typeof CURRENT_ENGINES)[number];

/**
 * The cached root of an engine when it was built (`complete` marker), else null. Never builds: .ci/run
 * does, and prints the time.
 */
export function engineRootPath(engine: CurrentEngine): string | null {
  let root: string;
  try {
    root = execFileSync(path.join(ENGINES_DIR, 'build-root.sh'), [engine, '--print-dir'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    return null;
  }
  return existsSync(path.join(path.dirname(root), 'complete')) ? root : null;
}

function defaultEngineRoot(): string | null {
  const engine = process.env['AUTOGROW_TEST_ENGINE'];
  if (!engine || engine === 'host') return null;
  if (!(CURRENT_ENGINES as readonly string[]).includes(engine)) {
    throw new Error(`AUTOGROW_TEST_ENGINE=${engine}: expected host, ${CURRENT_ENGINES.join(' or ')}`);
  }
  const root = engineRootPath(engine as CurrentEngine);
  if (!root)
    throw new Error(
      `AUTOGROW_TEST_ENGINE=${engine}: no built root; run test/engines/build-root.sh ${engine}`,
    );
  return root;
}

/**
 * Lazily unmounts whatever dockerd left mounted below `dir` (e.g. `--network host` builds leave
 * its host sandbox at exec/netns/default, and removing the tree then fails with EBUSY), deepest
 * first. Mount points are read from /proc/self/mountinfo (octal escapes decoded).
 */
export async function unmountBelow(dir: string): Promise<string[]> {
  const prefix = `${path.resolve(dir)}/`;
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .map((field) =>
      field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))),
    )
    .filter((mountPoint) => mountPoint.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
  for (const mountPoint of mountPoints) {
    await execFileAsync('/bin/umount', ['-l', mountPoint]).catch(() => undefined);
  }
  return mountPoints;
}

export class TestDockerd {
  readonly baseDir: string;
  readonly socketPath: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly pidFile: string;
  readonly logFile: string;
  private child: ChildProcess | null = null;
  /** The engine root dockerd runs from; null: the host's dockerd. */
  readonly engineRoot: string | null;

  constructor(private readonly options: DockerdOptions = {}) {
    this.engineRoot = options.engineRoot === undefined ? defaultEngineRoot() : options.engineRoot;
    // short paths: unix socket paths are limited to 108 bytes
    this.baseDir = options.baseDir ?? mkdtempSync(path.join(tmpdir(), 'agd-'));
    this.socketPath = path.join(this.baseDir, 'docker.sock');
    this.dataRoot = options.dataRoot ?? path.join(this.baseDir, 'root');
    this.execRoot = path.join(this.baseDir, 'exec');
    this.pidFile = path.join(this.baseDir, 'docker.pid');
    this.logFile = path.join(this.baseDir, 'dockerd.log');
  }

  get host(): string {
    return `unix://${this.socketPath}`;
  }

  async start(timeoutMs = 60_000): Promise<void> {
    mkdirSync(this.dataRoot, { recursive: true });
    mkdirSync(this.execRoot, { recursive: true });
    const args = [
      `--host=${this.host}`,
      `--data-root=${this.dataRoot}`,
      `--exec-root=${this.execRoot}`,
      `--pidfile=${this.pidFile}`,
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--ip-masq=false',
      ...(this.options.extraHosts ?? []).map((host) => `--host=${host}`),
      ...(this.options.storageDriver ? [`--storage-driver=${this.options.storageDriver}`] : []),
      ...(this.options.extraArgs ?? []),
    ];
    const log = openSync(this.logFile, 'a');
    if (this.engineRoot) {
      // the same paths inside the engine's mount namespace as outside: the base dir and the data root
      const binds = [this.baseDir, this.dataRoot].filter(
        (dir, index, all) => all.findIndex((other) => dir === other || dir.startsWith(`${other}/`)) === index,
      );
      this.child = spawn(RUN_ENGINE_DOCKERD, [this.engineRoot, ...binds, '--', ...args], {
        stdio: ['ignore', log, log],
        detached: false,
      });
    } else {
      this.child = spawn(DOCKERD, args, { stdio: ['ignore', log, log], detached: false });
    }
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`dockerd exited early:\n${this.logTail()}`);
      try {
        await this.cli(['version', '--format', '{{.Server.Version}}'], 5_000);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    throw new Error(`dockerd did not come up in ${timeoutMs} ms:\n${this.logTail()}`);
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Stops dockerd (SIGTERM, then SIGKILL after a grace period) and waits for it to exit. */
  async stop(graceMs = 20_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    this.child = null;
  }

  /** Stops dockerd and removes its directories (containers first, so mounts are released). */
  async destroy(): Promise<void> {
    if (this.child) {
      try {
        const ids = (await this.cli(['ps', '-aq'], 20_000)).trim().split('\n').filter(Boolean);
        if (ids.length > 0) await this.cli(['rm', '-f', ...ids], 60_000);
      } catch {
        // best effort: the daemon may already be broken
      }
    }
    await this.stop();
    await unmountBelow(this.baseDir);
    if (!this.options.baseDir) rmSync(this.baseDir, { recursive: true, force: true, maxRetries: 3 });
  }

  /** Runs the docker CLI against this daemon; returns stdout. */
  async cli(args: string[], timeoutMs = 60_000): Promise<string> {
    const { stdout } = await execFileAsync(DOCKER_CLI, ['-H', this.host, ...args], {
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, DOCKER_CONFIG: path.join(this.baseDir, 'cli-config') },
    });
    return stdout;
  }

  /** Imports a busybox-static image (no registry needed) as `tag`; idempotent. */
  async ensureBusyboxImage(tag = 'autogrow-busybox:test'): Promise<string> {
    try {
      await this.cli(['image', 'inspect', tag], 10_000);
      return tag;
    } catch {
      // not there yet
    }
    const tarball = await busyboxRootfsTarball();
    await execFileAsync(
      '/bin/sh',
      ['-c', `'${DOCKER_CLI}' -H '${this.host}' import - '${tag}' < '${tarball}'`],
      {
        // seconds on the host; up to 280 s measured in a TCG guest on a loaded machine (docs/vm.md)
        timeout: 300_000,
        env: { ...process.env, DOCKER_CONFIG: path.join(this.baseDir, 'cli-config') },
      },
    );
    return tag;
  }
}

let cachedTarball: string | null = null;

/** A tarball of a minimal busybox-static root filesystem (cached per process). */
export async function busyboxRootfsTarball(): Promise<string> {
  if (cachedTarball && existsSync(cachedTarball)) return cachedTarball;
  const dir = mkdtempSync(path.join(tmpdir(), 'agbb-'));
  const rootfs = path.join(dir, 'rootfs');
  for (const sub of ['bin', 'sbin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'data', 'var', 'root']) {
    mkdirSync(path.join(rootfs, sub), { recursive: true });
  }
  await execFileAsync('/bin/cp', ['/bin/busybox', path.join(rootfs, 'bin', 'busybox')]);
  const { stdout } = await execFileAsync('/bin/busybox', ['--list']);
  for (const applet of stdout.split('\n').filter(Boolean)) {
    if (applet === 'busybox') continue;
    const link = path.join(rootfs, 'bin', applet);
    if (!existsSync(link)) await execFileAsync('/bin/ln', ['-s', 'busybox', link]);
  }
  writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(path.join(rootfs, 'etc', 'group'), 'root:x:0:\n');
  const tarball = path.join(dir, 'busybox-rootfs.tar');
  await execFileAsync('/bin/tar', ['-C', rootfs, '-cf', tarball, '.']);
  cachedTarball = tarball;
  return tarball;
}

/** A loop-mounted btrfs filesystem with quotas enabled, for dockerd --storage-driver btrfs. */
export class LoopBtrfs {
  readonly imageFile: string;
  readonly mountPoint: string;

  constructor(
    readonly sizeBytes: number = 4 * 1024 ** 3,
    baseDir: string = mkdtempSync(path.join(tmpdir(), 'agbtrfs-')),
  ) {
    this.imageFile = path.join(baseDir, 'btrfs.img');
    this.mountPoint = path.join(baseDir, 'mnt');
  }

  async create(options: { quotas?: boolean } = {}): Promise<void> {
    mkdirSync(this.mountPoint, { recursive: true });
    await execFileAsync('/usr/bin/truncate', ['-s', String(this.sizeBytes), this.imageFile]);
    await execFileAsync('/sbin/mkfs.btrfs', ['-q', '-f', this.imageFile]);
    await execFileAsync('/bin/mount', ['-o', 'loop', this.imageFile, this.mountPoint]);
    if (options.quotas ?? true) await execFileAsync('/bin/btrfs', ['quota', 'enable', this.mountPoint]);
  }

  async destroy(): Promise<void> {
    try {
      await execFileAsync('/bin/umount', ['-l', this.mountPoint]);
    } catch {
      // not mounted
    }
    rmSync(path.dirname(this.imageFile), { recursive: true, force: true });
  }
}
