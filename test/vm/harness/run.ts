/**
 * Boots one fresh qemu VM per call (Debian's stock kernel under TCG: real device-mapper, XFS project
 * quotas, btrfs), prepares a named storage environment inside it, runs an inline command, a script
 * and/or vitest files of the `guest` project there, and returns the guest's exit code, its console
 * log and an artifacts directory.
 *
 * Per run, everything lives in <checkout>/.vm-artifacts/<run-id>/ (gitignored), shared read-write
 * with the guest over 9p as /mnt/run: run.env (what to do), console.log, rc (the guest's exit code,
 * written by its PID 1 just before power-off), result.json and artifacts/ (dockerd.log, dmesg.txt,
 * junit.xml, anything a guest test writes to $AUTOGROW_ARTIFACTS_DIR).
 * The checkout is shared read-only at its host path; the host's node binary directory at
 * /opt/hostnode (guest has no node of its own: same Debian 12 libc, so the host binary runs there).
 * The root image is attached with snapshot=on (never modified); a fresh sparse scratch disk is
 * /dev/vdb. A guest that does not power off within timeoutMs is killed and reported as timedOut.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CURRENT_ENGINES, engineRootPath, type CurrentEngine } from '../../../bench/lib/dockerd.js';
import { CHECKOUT_DIR, ensureVmImage } from './image.js';

export const VM_ENVIRONMENTS = [
  'none',
  'dm-thin-raw',
  'docker-dm-lvm',
  'docker-dm-loop',
  'overlay2-xfs',
  'btrfs',
] as const;
/**
 * - none: just the booted VM (udev running, modules available)
 * - dm-thin-raw: a dmsetup-made thin pool over the scratch disk, no Docker
 * - docker-dm-lvm: Docker devicemapper direct-lvm (dm.thinpooldev on an LVM thin pool)
 * - docker-dm-loop: Docker devicemapper loop-lvm (Docker's own sparse loop files)
 * - overlay2-xfs: Docker overlay2 with its data root on XFS mounted with pquota
 * - btrfs: Docker btrfs driver on a btrfs scratch filesystem
 */
export type VmEnvironment = (typeof VM_ENVIRONMENTS)[number];

export interface VmRunOptions {
  environment: VmEnvironment;
  /** Checkout-relative vitest files, run with `vitest run --project guest` after the setup. */
  vitestFiles?: string[];
  /** Checkout-relative bash script, run after the setup (before vitest). */
  script?: string;
  /** Inline bash (run with `bash -eu`), run first. */
  shell?: string;
  /** Kill the guest after this long (default 15 min). */
  timeoutMs?: number;
  /** Size of the sparse scratch disk /dev/vdb (default 8 GiB; only written blocks use host disk). */
  scratchSizeBytes?: number;
  /** Extra environment for the guest's setup, scripts and tests (names: [A-Z_][A-Z0-9_]*). */
  env?: Record<string, string>;
  memoryMiB?: number;
  cpus?: number;
  /** Short label for the run id (default: the environment). */
  label?: string;
  /** Also copy the guest console to this process's stderr (default: AUTOGROW_VM_VERBOSE=1). */
  echoConsole?: boolean;
  /**
   * Current engines (test/engines/build-root.sh roots, cached on the host) to share read-only with the
   * guest (9p tag `engine-<name>`); `test/vm/guest/engine-use.sh <name>` switches the guest's dockerd
   * to one. A root that was not built fails the run before boot (.ci/run builds them).
   */
  engines?: CurrentEngine[];
}

export interface VmRunResult {
  runId: string;
  /** The guest's exit code; 255 when the guest wrote none (killed at the timeout, crashed, no boot). */
  exitCode: number;
  timedOut: boolean;
  consoleLog: string;
  /** <checkout>/.vm-artifacts/<run-id>/ */
  runDir: string;
  /** runDir/artifacts: dockerd.log, dmesg.txt, junit.xml, environment.env, files written by tests. */
  artifactsDir: string;
  durationMs: number;
  /** Boots before this one that were killed because the guest kernel locked up (see runInVm). */
  lockupRetries: number;
}

export const DEFAULT_VM_TIMEOUT_MS = 15 * 60_000;
export const DEFAULT_SCRATCH_SIZE_BYTES = 8 * 1024 ** 3;
export const ARTIFACTS_ROOT = path.join(CHECKOUT_DIR, '.vm-artifacts');
const QEMU = '/usr/bin/qemu-system-x86_64';
const CONSOLE_KEEP_BYTES = 16 * 1024 * 1024;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const RELATIVE_PATH = /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/;

const liveVms = new Set<ChildProcess>();
process.once('exit', () => {
  for (const vm of liveVms) vm.kill('SIGKILL');
});

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

function checkoutRelativeFile(file: string, what: string): string {
  if (!RELATIVE_PATH.test(file) || file.split('/').includes('..')) {
    throw new Error(`${what} must be a plain checkout-relative path, got '${file}'`);
  }
  if (!existsSync(path.join(CHECKOUT_DIR, file))) throw new Error(`${what} '${file}' does not exist`);
  return file;
}

function buildRunEnv(options: VmRunOptions): string {
  const lines = [`export AUTOGROW_VM_ENVIRONMENT=${shellQuote(options.environment)}`];
  if (options.shell !== undefined) lines.push(`export AUTOGROW_VM_SHELL_FILE=/mnt/run/command.sh`);
  if (options.script !== undefined) {
    lines.push(`export AUTOGROW_VM_SCRIPT=${shellQuote(checkoutRelativeFile(options.script, 'script'))}`);
  }
  if (options.vitestFiles && options.vitestFiles.length > 0) {
    const files = options.vitestFiles.map((file) => checkoutRelativeFile(file, 'vitest file'));
    lines.push(`export AUTOGROW_VM_VITEST_FILES=${shellQuote(files.join(' '))}`);
  }
  if (options.engines && options.engines.length > 0) {
    lines.push(`export AUTOGROW_VM_ENGINES=${shellQuote(options.engines.join(' '))}`);
  }
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!ENV_NAME.test(name)) throw new Error(`invalid guest environment variable name '${name}'`);
    lines.push(`export ${name}=${shellQuote(value)}`);
  }
  return `${lines.join('\n')}\n`;
}

function newRunId(label: string): string {
  const stamp = new Date().toISOString().replaceAll(/[-:]/g, '').replace(/\..*/, '');
  return `${stamp}-${label.replaceAll(/[^A-Za-z0-9_-]/g, '_')}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Run directories kept under .vm-artifacts/ (newest first); older ones are deleted at each run. */
export const ARTIFACT_RUNS_KEPT = 40;

/**
 * Deletes all but the newest `keep` run directories (run ids start with a sortable UTC stamp).
 * Only names shaped like a run id are touched.
 */
export function pruneArtifactRuns(root: string, keep: number): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const runs = names.filter((name) => /^\d{8}T\d{6}-/.test(name)).sort();
  const removed = runs.slice(0, Math.max(0, runs.length - keep));
  for (const name of removed) rmSync(path.join(root, name), { recursive: true, force: true });
  return removed;
}

async function createSparseFile(file: string, sizeBytes: number): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.truncate(sizeBytes);
  } finally {
    await handle.close();
  }
}

/**
 * A guest CPU stuck this long in the kernel is a hung emulated machine, not a slow test: seen under
 * TCG (both vCPUs in runc's first container start, `watchdog: BUG: soft lockup - CPU#0 stuck for
 * 26s!` rising to 900 s+ until the run's timeout). Short soft-lockup reports do happen on a loaded
 * host and recover, so only a long one counts.
 */
export const GUEST_LOCKUP_SECONDS = 120;
const SOFT_LOCKUP = /watchdog: BUG: soft lockup - CPU#\d+ stuck for (\d+)s!/g;

/** The longest soft lockup the guest kernel reported in `text`, in seconds; 0 when none. */
export function longestSoftLockupSeconds(text: string): number {
  let longest = 0;
  for (const match of text.matchAll(SOFT_LOCKUP)) longest = Math.max(longest, Number(match[1]));
  return longest;
}

/**
 * Boots a fresh guest (read-only root snapshot, new scratch disk) and runs the options' script.
 * A guest whose kernel locks up (see {@link GUEST_LOCKUP_SECONDS}) is killed and booted again,
 * once, from scratch: nothing of the first boot survives, so the second is the same run. The
 * retry is printed and counted in the result, never silent.
 */
export async function runInVm(options: VmRunOptions): Promise<VmRunResult> {
  const first = await runInVmOnce(options);
  if (!first.lockedUp) return { ...first.result, lockupRetries: 0 };
  process.stderr.write(
    `[host] VM run ${first.result.runId}: the guest kernel locked up (soft lockup >= ${GUEST_LOCKUP_SECONDS} s); ` +
      'killed it and booting a fresh guest once more\n',
  );
  const second = await runInVmOnce(options);
  return { ...second.result, lockupRetries: 1 };
}

async function runInVmOnce(
  options: VmRunOptions,
): Promise<{ result: Omit<VmRunResult, 'lockupRetries'>; lockedUp: boolean }> {
  if (!(VM_ENVIRONMENTS as readonly string[]).includes(options.environment)) {
    throw new Error(`unknown VM environment '${options.environment}'`);
  }
  const runEnv = buildRunEnv(options); // validates before anything is created
  const engineShares = (options.engines ?? []).map((engine) => {
    if (!(CURRENT_ENGINES as readonly string[]).includes(engine))
      throw new Error(`unknown engine '${engine}'`);
    const root = engineRootPath(engine);
    if (!root)
      throw new Error(`engine '${engine}' has no built root: run test/engines/build-root.sh ${engine}`);
    return ['-virtfs', `local,path=${root},mount_tag=engine-${engine},security_model=none,readonly=on`];
  });
  const image = await ensureVmImage();
  pruneArtifactRuns(ARTIFACTS_ROOT, ARTIFACT_RUNS_KEPT - 1);
  const runId = newRunId(options.label ?? options.environment);
  const runDir = path.join(ARTIFACTS_ROOT, runId);
  const artifactsDir = path.join(runDir, 'artifacts');
  mkdirSync(artifactsDir, { recursive: true });
  await writeFile(path.join(runDir, 'run.env'), runEnv);
  if (options.shell !== undefined) await writeFile(path.join(runDir, 'command.sh'), `${options.shell}\n`);

  const scratchDir = mkdtempSync(path.join(tmpdir(), 'agvm-'));
  const scratchFile = path.join(scratchDir, 'scratch.img');
  await createSparseFile(scratchFile, options.scratchSizeBytes ?? DEFAULT_SCRATCH_SIZE_BYTES);
  const nodeDir = path.dirname(realpathSync(process.execPath));

  const args = [
    ...['-accel', 'tcg,thread=multi', '-cpu', 'max'], // KVM here is kvm_pvm: stock kernels do not run on it
    ...['-smp', String(options.cpus ?? 2), '-m', String(options.memoryMiB ?? 2048)],
    ...['-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio'],
    ...['-kernel', path.join(image.dir, 'vmlinuz'), '-initrd', path.join(image.dir, 'initrd.gz')],
    '-append',
    // no_timer_check: on a loaded host the emulated CPU is too slow for the kernel's IO-APIC timer
    // check, which then panics at boot ("IO-APIC + timer doesn't work!"); seen here at load 25.
    `console=ttyS0 quiet panic=-1 no_timer_check autogrow.src=${CHECKOUT_DIR}`,
    ...['-drive', `file=${path.join(image.dir, 'root.img')},format=raw,if=virtio,snapshot=on`],
    ...['-drive', `file=${scratchFile},format=raw,if=virtio,cache=unsafe`],
    ...['-virtfs', `local,path=${CHECKOUT_DIR},mount_tag=src,security_model=none,readonly=on,id=src`],
    ...['-virtfs', `local,path=${runDir},mount_tag=run,security_model=none,id=run`],
    ...['-virtfs', `local,path=${nodeDir},mount_tag=node,security_model=none,readonly=on,id=node`],
    ...engineShares.flat(),
  ];
  await writeFile(path.join(runDir, 'qemu-args.json'), JSON.stringify([QEMU, ...args], null, 2));

  const timeoutMs = options.timeoutMs ?? DEFAULT_VM_TIMEOUT_MS;
  const echo = options.echoConsole ?? process.env.AUTOGROW_VM_VERBOSE === '1';
  const startedAt = Date.now();
  let timedOut = false;
  let lockedUp = false;
  let consoleLog = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const consoleFile = createWriteStream(path.join(runDir, 'console.log'));
      const vm = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      liveVms.add(vm);
      const onOutput = (chunk: Buffer): void => {
        consoleFile.write(chunk);
        if (consoleLog.length < CONSOLE_KEEP_BYTES) consoleLog += chunk.toString();
        if (echo) process.stderr.write(chunk);
        if (!lockedUp && longestSoftLockupSeconds(chunk.toString()) >= GUEST_LOCKUP_SECONDS) {
          lockedUp = true;
          vm.kill('SIGKILL');
        }
      };
      vm.stdout.on('data', onOutput);
      vm.stderr.on('data', onOutput);
      const timer = setTimeout(() => {
        timedOut = true;
        vm.kill('SIGKILL');
      }, timeoutMs);
      vm.on('error', (error) => {
        clearTimeout(timer);
        liveVms.delete(vm);
        reject(error);
      });
      vm.on('close', () => {
        clearTimeout(timer);
        liveVms.delete(vm);
        consoleFile.end(() => resolve());
      });
    });
  } finally {
    await rm(scratchDir, { recursive: true, force: true });
  }
  const durationMs = Date.now() - startedAt;
  const rcFile = path.join(runDir, 'rc');
  const rcText = existsSync(rcFile) ? readFileSync(rcFile, 'utf8').trim() : '';
  const exitCode = !timedOut && !lockedUp && /^\d+$/.test(rcText) ? Number(rcText) : 255;
  if (timedOut) {
    consoleLog += `\n[host] guest killed after ${timeoutMs} ms without powering off\n`;
  }
  if (lockedUp) consoleLog += `\n[host] guest killed: its kernel locked up (soft lockup)\n`;
  const result = { runId, exitCode, timedOut, consoleLog, runDir, artifactsDir, durationMs };
  await writeFile(
    path.join(runDir, 'result.json'),
    JSON.stringify(
      { runId, environment: options.environment, exitCode, timedOut, lockedUp, durationMs, image: image.dir },
      null,
      2,
    ),
  );
  return { result, lockedUp };
}

/** Last `lines` lines of the console, for assertion messages. */
export function consoleTail(result: VmRunResult, lines = 60): string {
  return result.consoleLog.split('\n').slice(-lines).join('\n');
}

/**
 * Throws unless the guest ran to completion with exit code 0; the message carries the console tail
 * and the run directory, so a failing guest test is diagnosable from the host's test output alone.
 */
export function assertVmRunPassed(result: VmRunResult): void {
  if (result.exitCode === 0 && !result.timedOut) return;
  const why = result.timedOut ? 'timed out' : `exited with ${result.exitCode}`;
  throw new Error(
    `VM run ${result.runId} ${why} after ${Math.round(result.durationMs / 1000)} s ` +
      `(artifacts: ${result.runDir})\n--- console tail ---\n${consoleTail(result)}`,
  );
}
