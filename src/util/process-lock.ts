/**
 * A cross-process lock for every docker-autogrow process on the host (the agent, a one-shot
 * `grow` or `once`, a devicemapper device step), correct under crashes, pid reuse and races.
 *
 * Layout: a lock is a directory of generations, `<lock>/<gen>` (the holder's identity as JSON)
 * and `<lock>/<gen>.released`. The highest generation is the lock's state: held while its owner
 * lives and has not released it, free otherwise. A generation never goes back from free to held,
 * so taking a free (released or stale) lock is one exclusive step: link() a fully written,
 * fsync'd file as generation max+1. Exactly one process wins each generation; a loser gets EEXIST
 * and looks again. There is no "unlink the stale file, then create mine" window, the race where
 * two processes read the same dead pid and the second unlinks the first one's fresh lock.
 *
 * Older generations are deleted by the winner after it has linked its own, so a deleted number is
 * always below one that exists; a process that links such a number on a stale listing sees the
 * higher one when it checks again and backs out.
 *
 * Identity: pid + the process's start time (field 22 of /proc/<pid>/stat, clock ticks since boot)
 * + the boot id. A recycled pid has another start time; a lock from before a reboot has another
 * boot id. Both read as dead owners.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { fsyncDirectory } from './atomic-file.js';
import { sleepMs } from './clock.js';

/** Who holds (or held) a generation. */
export interface LockOwner {
  pid: number;
  /** Start time of the process in clock ticks since boot (/proc/<pid>/stat field 22); null if unknown. */
  startTicks: number | null;
  /** /proc/sys/kernel/random/boot_id of the boot the owner ran in; null if unknown. */
  bootId: string | null;
  /** What the owner does, for messages (`run`, `grow`, `once`, `dm-<hash>` ...). */
  role: string;
  acquiredAtMs: number;
}

export interface ProcessLockOptions {
  /** Written into the lock for messages: what the holder is doing. */
  role: string;
  /** Make the new generation durable before returning (default true). */
  fsync?: boolean;
}

export interface HeldProcessLock {
  readonly lockPath: string;
  readonly generation: number;
  /** Marks the generation released. Idempotent. */
  release(): void;
}

export type TryAcquireResult = { held: HeldProcessLock } | { busy: LockOwner };

export class ProcessLockBusyError extends Error {
  override readonly name = 'ProcessLockBusyError';
  constructor(
    message: string,
    readonly owner: LockOwner,
  ) {
    super(message);
  }
}

const GENERATION = /^(\d{1,15})$/;
const RELEASED = /^(\d{1,15})\.released$/;
const TEMPORARY = /^\.tmp-/;
/** A temporary file this old was left by a process that died between writing and linking it. */
const TEMPORARY_STALE_MS = 60_000;

let bootIdCache: string | null | undefined;

export function currentBootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      bootIdCache = null;
    }
  }
  return bootIdCache;
}

/** Start time of `pid` in clock ticks since boot, or null when there is no such process. */
export function processStartTicks(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  const ticks = Number(fields[19]);
  return Number.isSafeInteger(ticks) ? ticks : null;
}

export function currentProcessIdentity(role: string): LockOwner {
  return {
    pid: process.pid,
    startTicks: processStartTicks(process.pid),
    bootId: currentBootId(),
    role,
    acquiredAtMs: Date.now(),
  };
}

/** Whether the process that wrote `owner` still runs (same boot, same pid, same start time). */
export function ownerAlive(owner: LockOwner): boolean {
  const bootId = currentBootId();
  if (owner.bootId !== null && bootId !== null && owner.bootId !== bootId) return false;
  const startTicks = processStartTicks(owner.pid);
  if (startTicks === null) {
    // No /proc entry: dead, unless /proc is not there at all (then ask the kernel).
    if (existsProc()) return false;
    try {
      process.kill(owner.pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  return owner.startTicks === null || owner.startTicks === startTicks;
}

function existsProc(): boolean {
  try {
    statSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}

function isSameProcess(owner: LockOwner): boolean {
  return owner.pid === process.pid && owner.startTicks === processStartTicks(process.pid);
}

function parseOwner(text: string): LockOwner | null {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid !== 'number' || !Number.isSafeInteger(value.pid) || value.pid <= 0) return null;
    return {
      pid: value.pid,
      startTicks: typeof value.startTicks === 'number' ? value.startTicks : null,
      bootId: typeof value.bootId === 'string' ? value.bootId : null,
      role: typeof value.role === 'string' ? value.role : 'unknown',
      acquiredAtMs: typeof value.acquiredAtMs === 'number' ? value.acquiredAtMs : 0,
    };
  } catch {
    return null;
  }
}

interface Listing {
  generations: number[];
  released: Set<number>;
  temporaries: string[];
}

function list(lockPath: string): Listing {
  const generations: number[] = [];
  const released = new Set<number>();
  const temporaries: string[] = [];
  for (const name of readdirSync(lockPath)) {
    let match = GENERATION.exec(name);
    if (match) {
      generations.push(Number(match[1]));
      continue;
    }
    match = RELEASED.exec(name);
    if (match) {
      released.add(Number(match[1]));
      continue;
    }
    if (TEMPORARY.test(name)) temporaries.push(name);
  }
  generations.sort((a, b) => a - b);
  return { generations, released, temporaries };
}

type GenerationState = { kind: 'held'; owner: LockOwner } | { kind: 'free' } | { kind: 'vanished' };

function stateOf(lockPath: string, generation: number, released: ReadonlySet<number>): GenerationState {
  if (released.has(generation)) return { kind: 'free' };
  let text: string;
  try {
    text = readFileSync(path.join(lockPath, String(generation)), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'vanished' };
    throw error;
  }
  // Written in full and fsync'd before it was linked: unreadable content is garbage, not a race.
  const owner = parseOwner(text);
  if (owner === null) return { kind: 'free' };
  try {
    statSync(path.join(lockPath, `${generation}.released`));
    return { kind: 'free' };
  } catch {
    // not released
  }
  return ownerAlive(owner) ? { kind: 'held', owner } : { kind: 'free' };
}

function writeTemporary(lockPath: string, owner: LockOwner, fsync: boolean): string {
  const file = path.join(lockPath, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fd = openSync(file, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(owner)}\n`);
    if (fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return file;
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

function cleanUp(lockPath: string, below: number, temporaries: readonly string[]): void {
  const { generations, released } = list(lockPath);
  for (const generation of generations) {
    if (generation < below) unlinkQuietly(path.join(lockPath, String(generation)));
  }
  for (const generation of released) {
    if (generation < below) unlinkQuietly(path.join(lockPath, `${generation}.released`));
  }
  const nowMs = Date.now();
  for (const name of temporaries) {
    const file = path.join(lockPath, name);
    try {
      if (nowMs - statSync(file).mtimeMs > TEMPORARY_STALE_MS) unlinkQuietly(file);
    } catch {
      // gone
    }
  }
}

/**
 * Takes the lock at `lockPath` (a directory, created if missing) unless a live process holds it.
 * Never waits. Holding it already in this process counts as busy: callers queue in-process.
 */
export function tryAcquireProcessLock(lockPath: string, options: ProcessLockOptions): TryAcquireResult {
  const fsync = options.fsync !== false;
  mkdirSync(lockPath, { recursive: true, mode: 0o700 });
  const owner = currentProcessIdentity(options.role);
  const temporary = writeTemporary(lockPath, owner, fsync);
  try {
    for (let attempt = 0; attempt < 1000; attempt += 1) {
      const listing = list(lockPath);
      const top = listing.generations[listing.generations.length - 1];
      if (top !== undefined) {
        const state = stateOf(lockPath, top, listing.released);
        if (state.kind === 'vanished') continue; // cleaned up by a newer winner: look again
        if (state.kind === 'held') return { busy: state.owner };
      }
      const mine = (top ?? 0) + 1;
      try {
        linkSync(temporary, path.join(lockPath, String(mine)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue; // another process won it
        throw error;
      }
      // A stale listing can link a number a newer winner already cleaned away: a higher one exists.
      const after = list(lockPath);
      if (after.generations.some((generation) => generation > mine)) {
        unlinkQuietly(path.join(lockPath, String(mine)));
        continue;
      }
      if (fsync) fsyncDirectory(lockPath);
      cleanUp(lockPath, mine, listing.temporaries);
      return { held: heldLock(lockPath, mine, fsync) };
    }
    throw new Error(`${lockPath}: could not settle the lock after 1000 attempts`);
  } finally {
    unlinkQuietly(temporary);
  }
}

function heldLock(lockPath: string, generation: number, fsync: boolean): HeldProcessLock {
  let released = false;
  return {
    lockPath,
    generation,
    release() {
      if (released) return;
      released = true;
      const marker = path.join(lockPath, `${generation}.released`);
      try {
        closeSync(openSync(marker, 'wx', 0o600));
        if (fsync) fsyncDirectory(lockPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    },
  };
}

/** Who holds the lock now (a live owner that has not released it), or null. */
export function processLockHolder(lockPath: string): LockOwner | null {
  let listing: Listing;
  try {
    listing = list(lockPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const top = listing.generations[listing.generations.length - 1];
  if (top === undefined) return null;
  const state = stateOf(lockPath, top, listing.released);
  return state.kind === 'held' ? state.owner : null;
}

export function describeOwner(owner: LockOwner): string {
  const since = owner.acquiredAtMs > 0 ? ` since ${new Date(owner.acquiredAtMs).toISOString()}` : '';
  return `pid ${owner.pid} (${owner.role})${since}`;
}

/**
 * Takes the lock, polling while a live process holds it, for up to `waitMs` (0: one try).
 * Throws {@link ProcessLockBusyError} when it stays held. Held by this very process counts as busy.
 */
export async function acquireProcessLock(
  lockPath: string,
  options: ProcessLockOptions & { waitMs?: number; pollMs?: number },
): Promise<HeldProcessLock> {
  const deadlineMs = Date.now() + (options.waitMs ?? 0);
  const pollMs = options.pollMs ?? 50;
  for (;;) {
    const result = tryAcquireProcessLock(lockPath, options);
    if ('held' in result) return result.held;
    if (Date.now() >= deadlineMs || isSameProcess(result.busy)) {
      throw new ProcessLockBusyError(`${lockPath} is held by ${describeOwner(result.busy)}`, result.busy);
    }
    await sleepMs(pollMs);
  }
}
