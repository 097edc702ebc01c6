/**
 * A CLI command acting in-process because no agent runs: it holds the agent lock (taken by
 * src/control/owner.ts routeToStorageOwner) for its whole run, closes grows a crash left open
 * (it is the owner now, so none can be running), acts, and releases the lock.
 */
import type { AgentContext } from '../agent/app.js';
import { closeInterruptedGrows } from '../agent/history.js';
import type { HeldProcessLock } from '../util/process-lock.js';

export async function actAsLocalOwner<T>(
  lock: HeldProcessLock,
  build: () => Promise<AgentContext>,
  body: (agent: AgentContext) => Promise<T>,
): Promise<T> {
  try {
    const agent = await build();
    recoverInterruptedGrows(agent);
    return await body(agent);
  } finally {
    lock.release();
  }
}

/** Closes and logs the grows a crash left open; the caller owns storage changes (holds the agent lock). */
export function recoverInterruptedGrows(agent: Pick<AgentContext, 'journal' | 'config' | 'logger'>): void {
  for (const recovered of closeInterruptedGrows(agent.journal, agent.config.backoff, Date.now())) {
    agent.logger.warn(
      {
        containerId: recovered.containerId,
        name: recovered.name,
        startedAtMs: recovered.startedAtMs,
        consecutiveInterruptions: recovered.consecutiveInterruptions,
        backoffUntilMs: recovered.backoffUntilMs,
      },
      'interrupted grow recovered',
    );
  }
}
