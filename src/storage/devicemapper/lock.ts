/**
 * Per-device lock shared by every docker-autogrow process on the host (the agent and a manual
 * `grow`): an O_EXCL lock file holding the owner's pid under <stateDir>/locks. A lock whose owner
 * no longer exists (killed mid-grow) is taken over; recover() then replays the journal.
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

export class DeviceBusyError extends Error {
  override readonly name = 'DeviceBusyError';
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** In-process queue per key so two grows of one device in this process never interleave. */
const inProcess = new Map<string, Promise<unknown>>();

export async function withDeviceLock<T>(stateDir: string, key: string, body: () => Promise<T>): Promise<T> {
  const queueKey = path.join(stateDir, key);
  const previous = inProcess.get(queueKey) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(() => withLockFile(stateDir, key, body));
  inProcess.set(queueKey, run);
  try {
    return await run;
  } finally {
    if (inProcess.get(queueKey) === run) inProcess.delete(queueKey);
  }
}

async function withLockFile<T>(stateDir: string, key: string, body: () => Promise<T>): Promise<T> {
  const directory = path.join(stateDir, 'locks');
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  const file = path.join(directory, `${key}.lock`);
  for (let attempt = 0; ; attempt += 1) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST')
          throw new DeviceBusyError(`${key} is locked by another docker-autogrow process (${file})`);
        throw error;
      }
      let ownerPid = NaN;
      try {
        ownerPid = Number(readFileSync(file, 'utf8').trim());
      } catch {
        // vanished between open and read: retry
      }
      if (
        Number.isSafeInteger(ownerPid) &&
        ownerPid > 0 &&
        processAlive(ownerPid) &&
        ownerPid !== process.pid
      ) {
        throw new DeviceBusyError(`${key} is being grown by pid ${ownerPid} (${file})`);
      }
      try {
        unlinkSync(file); // stale: its owner died
      } catch {
        // someone else removed it
      }
    }
  }
  try {
    return await body();
  } finally {
    try {
      unlinkSync(file);
    } catch {
      // already gone
    }
  }
}
