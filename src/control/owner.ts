/**
 * One owner for storage changes per host (per state directory): the agent holds the agent lock
 * for as long as it runs and answers on the control socket; a CLI command that changes storage
 * asks the agent when one runs, and otherwise takes the agent lock itself for its duration, so
 * two processes never change storage at once. Both live beside the journal.
 */
import path from 'node:path';
import {
  describeOwner,
  tryAcquireProcessLock,
  type HeldProcessLock,
  type LockOwner,
} from '../util/process-lock.js';
import { NoAgentError, sendControlRequest, type ControlClientOptions } from './client.js';
import type { ControlReply, ControlRequest } from './protocol.js';
import { sleepMs } from '../util/clock.js';

export const AGENT_ROLE = 'run';

export function agentLockPath(stateDir: string): string {
  return path.join(stateDir, 'agent.lock.d');
}

export function controlSocketPath(stateDir: string): string {
  return path.join(stateDir, 'control.sock');
}

/** Another process owns storage changes on this host; `owner` says who. */
export class StorageOwnedError extends Error {
  override readonly name = 'StorageOwnedError';
  constructor(
    message: string,
    readonly owner: LockOwner,
  ) {
    super(message);
  }
}

/**
 * For `run`: takes the agent lock. Another agent on the same state refuses at once; a one-shot
 * command (`grow`, `once`) holding it is waited for up to `waitForCommandMs`.
 */
export async function acquireAgentLock(
  stateDir: string,
  options: { waitForCommandMs?: number; pollMs?: number; onWait?: (owner: LockOwner) => void } = {},
): Promise<HeldProcessLock> {
  const lockPath = agentLockPath(stateDir);
  const deadlineMs = Date.now() + (options.waitForCommandMs ?? 120_000);
  let told = false;
  for (;;) {
    const result = tryAcquireProcessLock(lockPath, { role: AGENT_ROLE });
    if ('held' in result) return result.held;
    const owner = result.busy;
    if (owner.role === AGENT_ROLE) {
      throw new StorageOwnedError(
        `another docker-autogrow agent runs on this host with the same state (${stateDir}): ${describeOwner(owner)}; stop it first, or give this one its own journal.path`,
        owner,
      );
    }
    if (Date.now() >= deadlineMs) {
      throw new StorageOwnedError(
        `a docker-autogrow command still changes storage on this host: ${describeOwner(owner)}`,
        owner,
      );
    }
    if (!told) options.onWait?.(owner);
    told = true;
    await sleepMs(options.pollMs ?? 200);
  }
}

export type OwnerRoute = { kind: 'agent'; reply: ControlReply } | { kind: 'local'; lock: HeldProcessLock };

export interface RouteOptions extends ControlClientOptions {
  /** What this command is, written in the lock for messages (`grow`, `once`). */
  role: string;
  /** How long to wait for a starting agent (it holds the lock, its socket is not up yet). */
  agentStartWaitMs?: number;
  pollMs?: number;
}

/**
 * For a command that changes storage: the agent's reply when an agent runs, or the agent lock to
 * act in-process under. Throws {@link StorageOwnedError} while another command holds the lock.
 * A request the agent received is never retried in-process (it may be acting on it).
 */
export async function routeToStorageOwner(
  stateDir: string,
  request: ControlRequest,
  options: RouteOptions,
): Promise<OwnerRoute> {
  const socketPath = controlSocketPath(stateDir);
  const deadlineMs = Date.now() + (options.agentStartWaitMs ?? 30_000);
  for (;;) {
    try {
      return { kind: 'agent', reply: await sendControlRequest(socketPath, request, options) };
    } catch (error) {
      if (!(error instanceof NoAgentError)) throw error;
    }
    const result = tryAcquireProcessLock(agentLockPath(stateDir), { role: options.role });
    if ('held' in result) return { kind: 'local', lock: result.held };
    const owner = result.busy;
    if (owner.role !== AGENT_ROLE) {
      throw new StorageOwnedError(
        `another docker-autogrow command is changing storage on this host: ${describeOwner(owner)}; try again when it has finished`,
        owner,
      );
    }
    if (Date.now() >= deadlineMs) {
      throw new StorageOwnedError(
        `the docker-autogrow agent (${describeOwner(owner)}) owns this host but does not answer on ${socketPath}`,
        owner,
      );
    }
    await sleepMs(options.pollMs ?? 200);
  }
}

/** For a read-only command: the agent's reply, or null when no agent listens. */
export async function askAgentIfRunning(
  stateDir: string,
  request: ControlRequest,
  options: ControlClientOptions = {},
): Promise<ControlReply | null> {
  try {
    return await sendControlRequest(controlSocketPath(stateDir), request, options);
  } catch (error) {
    if (error instanceof NoAgentError) return null;
    throw error;
  }
}
