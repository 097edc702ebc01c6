/**
 * Per-device lock shared by every docker-autogrow process on the host (the agent and a manual
 * `grow`): a {@link tryAcquireProcessLock} lock under <stateDir>/locks, so a lock whose owner died
 * mid-grow (or whose pid was recycled) is taken over by exactly one process; recover() then
 * replays the devicemapper journal. Within one process, grows of one device queue instead.
 */
import path from 'node:path';
import { describeOwner, tryAcquireProcessLock } from '../../util/process-lock.js';

export class DeviceBusyError extends Error {
  override readonly name = 'DeviceBusyError';
}

/** In-process queue per key so two grows of one device in this process never interleave. */
const inProcess = new Map<string, Promise<unknown>>();

export async function withDeviceLock<T>(stateDir: string, key: string, body: () => Promise<T>): Promise<T> {
  const queueKey = path.join(stateDir, key);
  const previous = inProcess.get(queueKey) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(() => withProcessLock(stateDir, key, body));
  inProcess.set(queueKey, run);
  try {
    return await run;
  } finally {
    if (inProcess.get(queueKey) === run) inProcess.delete(queueKey);
  }
}

async function withProcessLock<T>(stateDir: string, key: string, body: () => Promise<T>): Promise<T> {
  const lockPath = path.join(stateDir, 'locks', `${key}.lock.d`);
  const result = tryAcquireProcessLock(lockPath, { role: key });
  if ('busy' in result) {
    throw new DeviceBusyError(
      `${key} is being changed by another docker-autogrow process: ${describeOwner(result.busy)} (${lockPath})`,
    );
  }
  try {
    return await body();
  } finally {
    result.held.release();
  }
}
