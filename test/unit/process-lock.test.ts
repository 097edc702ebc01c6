import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  acquireProcessLock,
  currentBootId,
  processLockHolder,
  processStartTicks,
  ProcessLockBusyError,
  tryAcquireProcessLock,
} from '../../src/util/process-lock.js';
import { DeviceBusyError, withDeviceLock } from '../../src/storage/devicemapper/lock.js';
import { transpileForNode } from '../support/transpile.js';

let childScript = '';
let scratch = '';
const children: ChildProcess[] = [];

beforeAll(() => {
  childScript = transpileForNode(['test/support/process-lock-child.ts']);
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});
afterAll(() => {
  rmSync(path.dirname(path.dirname(path.dirname(childScript))), { recursive: true, force: true });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function freshLockPath(): string {
  scratch ||= mkdtempSync(path.join(os.tmpdir(), 'autogrow-lock-test-'));
  const directory = mkdtempSync(path.join(scratch, 'case-'));
  return path.join(directory, 'agent.lock.d');
}

interface Racer {
  child: ChildProcess;
  /** The child's one result line: `won <generation>` or `busy <pid>`. */
  result: Promise<string>;
  exited: Promise<void>;
}

function startRacer(lockPath: string, startAtMs: number): Racer {
  const child = spawn(process.execPath, [childScript, lockPath, String(startAtMs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  let output = '';
  const result = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('\n')) resolve(output.trim());
    });
    child.once('exit', (code) => reject(new Error(`child exited ${code} before answering: ${output}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, result, exited };
}

async function holdInChild(lockPath: string): Promise<Racer> {
  const racer = startRacer(lockPath, Date.now());
  expect(await racer.result).toMatch(/^won \d+$/);
  return racer;
}

describe('process lock', () => {
  it('is busy while a live process holds it, names that process, and is free after release', async () => {
    const lockPath = freshLockPath();
    const holder = await holdInChild(lockPath);
    const attempt = tryAcquireProcessLock(lockPath, { role: 'test' });
    expect('busy' in attempt && attempt.busy.pid).toBe(holder.child.pid);
    expect(processLockHolder(lockPath)?.pid).toBe(holder.child.pid);
    await expect(acquireProcessLock(lockPath, { role: 'test', waitMs: 200 })).rejects.toBeInstanceOf(
      ProcessLockBusyError,
    );
    holder.child.stdin!.write('release\n');
    await holder.exited;
    expect(processLockHolder(lockPath)).toBeNull();
    const taken = tryAcquireProcessLock(lockPath, { role: 'test' });
    expect('held' in taken).toBe(true);
    if ('held' in taken) taken.held.release();
  });

  it('waits for a holder that releases within waitMs', async () => {
    const lockPath = freshLockPath();
    const holder = await holdInChild(lockPath);
    setTimeout(() => holder.child.stdin!.write('release\n'), 300);
    const held = await acquireProcessLock(lockPath, { role: 'test', waitMs: 10_000, pollMs: 20 });
    expect(held.generation).toBe(2);
    held.release();
  });

  it('counts a lock held by this same process as busy (callers queue in-process)', () => {
    const lockPath = freshLockPath();
    const first = tryAcquireProcessLock(lockPath, { role: 'test' });
    expect('held' in first).toBe(true);
    const second = tryAcquireProcessLock(lockPath, { role: 'test' });
    expect('busy' in second && second.busy.pid).toBe(process.pid);
    if ('held' in first) first.held.release();
  });

  it('takes over the lock of a process killed while holding it', async () => {
    const lockPath = freshLockPath();
    const holder = await holdInChild(lockPath);
    holder.child.kill('SIGKILL');
    await holder.exited;
    const taken = tryAcquireProcessLock(lockPath, { role: 'test' });
    expect('held' in taken && taken.held.generation).toBe(2);
    // the winner cleans the older generation away
    expect(readdirSync(lockPath).sort()).toEqual(['2']);
  });

  it('takes over a lock whose pid now belongs to another process (recycled pid), not a live one', async () => {
    const sleeper = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
    children.push(sleeper);
    await new Promise((resolve) => sleeper.once('spawn', resolve));
    const pid = sleeper.pid!;
    const realTicks = processStartTicks(pid);
    expect(realTicks).not.toBeNull();
    const forge = (startTicks: number, bootId: string | null) => {
      const lockPath = freshLockPath();
      mkdirSync(lockPath, { recursive: true });
      writeFileSync(
        path.join(lockPath, '7'),
        JSON.stringify({ pid, startTicks, bootId, role: 'run', acquiredAtMs: 1 }),
      );
      return lockPath;
    };
    // control: the same pid with its real start time and this boot is a live owner
    const live = tryAcquireProcessLock(forge(realTicks!, currentBootId()), { role: 'test' });
    expect('busy' in live && live.busy.pid).toBe(pid);
    // the pid was recycled: same number, another start time
    const recycled = tryAcquireProcessLock(forge(realTicks! - 1, currentBootId()), { role: 'test' });
    expect('held' in recycled && recycled.held.generation).toBe(8);
    // written in an earlier boot
    const otherBoot = tryAcquireProcessLock(forge(realTicks!, '00000000-0000-0000-0000-000000000000'), {
      role: 'test',
    });
    expect('held' in otherBoot && otherBoot.held.generation).toBe(8);
  });

  it('reads a start time for a live pid and none for a pid that cannot exist', () => {
    expect(processStartTicks(process.pid)).toBeGreaterThan(0);
    expect(processStartTicks(2 ** 22 + 1)).toBeNull();
  });

  it('racing processes: exactly one wins each generation, fresh, stale or released', async () => {
    const lockPath = freshLockPath();
    const racersPerRound = 6;
    const rounds = ['fresh', 'stale', 'stale', 'released', 'stale'] as const;
    let expectedGeneration = 1;
    for (const round of rounds) {
      const startAtMs = Date.now() + 600;
      const racers = Array.from({ length: racersPerRound }, () => startRacer(lockPath, startAtMs));
      const results = await Promise.all(racers.map((racer) => racer.result));
      const winners = racers.filter((_, index) => results[index]!.startsWith('won '));
      expect(winners, `${round} round: ${results.join(', ')}`).toHaveLength(1);
      const winner = winners[0]!;
      expect(results.filter((line) => line === `won ${expectedGeneration}`)).toHaveLength(1);
      // every loser was told who holds it: the winner, never a dead owner
      for (const line of results) if (!line.startsWith('won ')) expect(line).toBe(`busy ${winner.child.pid}`);
      await Promise.all(racers.filter((racer) => racer !== winner).map((racer) => racer.exited));
      // the next round races for a lock left stale (exit holding it) or released
      winner.child.stdin!.write(rounds[rounds.indexOf(round) + 1] === 'released' ? 'release\n' : 'exit\n');
      await winner.exited;
      expectedGeneration += 1;
    }
  }, 60_000);
});

describe('devicemapper device lock (a thin wrapper)', () => {
  it('queues in-process and refuses while another process holds the device', async () => {
    const stateDir = path.dirname(freshLockPath());
    const order: string[] = [];
    await Promise.all([
      withDeviceLock(stateDir, 'dm-abc', async () => {
        order.push('a-start');
        await new Promise((resolve) => setTimeout(resolve, 50));
        order.push('a-end');
      }),
      withDeviceLock(stateDir, 'dm-abc', async () => {
        order.push('b');
      }),
    ]);
    expect(order).toEqual(['a-start', 'a-end', 'b']);
    const holder = await holdInChild(path.join(stateDir, 'locks', 'dm-abc.lock.d'));
    await expect(withDeviceLock(stateDir, 'dm-abc', async () => 1)).rejects.toThrow(DeviceBusyError);
    await expect(withDeviceLock(stateDir, 'dm-abc', async () => 1)).rejects.toThrow(
      new RegExp(`pid ${holder.child.pid}`),
    );
    holder.child.kill('SIGKILL');
    await holder.exited;
    await expect(withDeviceLock(stateDir, 'dm-abc', async () => 'grown')).resolves.toBe('grown');
  });
});
