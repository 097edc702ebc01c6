/**
 * The order generator of the devicemapper VM sequence test (test/vm/dm-sequence-orders.ts): seeded
 * and replayable, only possible steps, and the CI seed set covers every kind of event.
 */
import { describe, expect, it } from 'vitest';
import {
  DM_SEQ_ACTIONS,
  actionCounts,
  formatOrder,
  generateOrder,
  parseOrder,
  stopsWhileAgentDown,
  DM_SEQ_CI_SEEDS,
  DM_SEQ_CONTAINERS,
  DM_SEQ_LIVE_RESTORE,
  DM_SEQ_STEPS,
  DM_SEQ_CI_VARIANTS,
  grownEvents,
  type DmSeqOrder,
} from '../vm/dm-sequence-orders.js';

const options = { steps: 12, containers: ['c1', 'c2'], liveRestore: true };

/** Replays an order on a model and fails on any impossible step. */
function assertPossible(order: DmSeqOrder, liveRestore: boolean, containers: readonly string[]): void {
  let agentUp = false;
  const running = new Map(containers.map((name) => [name, true]));
  for (const step of order.steps) {
    const isRunning = step.container === undefined ? true : running.get(step.container);
    switch (step.action) {
      case 'grow-run':
        expect(agentUp && isRunning).toBe(true);
        break;
      case 'grow-once':
      case 'grow-manual':
      case 'stop-start':
      case 'restart':
        expect(isRunning).toBe(true);
        break;
      case 'stop':
        expect(isRunning).toBe(true);
        running.set(step.container!, false);
        break;
      case 'start':
        expect(isRunning).toBe(false);
        running.set(step.container!, true);
        break;
      case 'agent-term':
      case 'agent-kill':
        expect(agentUp).toBe(true);
        agentUp = false;
        break;
      case 'agent-start':
        expect(agentUp).toBe(false);
        agentUp = true;
        break;
      case 'dockerd-restart':
        if (!liveRestore) for (const name of containers) running.set(name, false);
        break;
    }
  }
}

describe('devicemapper sequence orders', () => {
  it('the same seed gives the same order; another seed another one', () => {
    expect(formatOrder(generateOrder(7, options))).toBe(formatOrder(generateOrder(7, options)));
    expect(formatOrder(generateOrder(7, options))).not.toBe(formatOrder(generateOrder(8, options)));
  });

  it('round-trips through its text form', () => {
    const order = generateOrder(42, options);
    expect(parseOrder(formatOrder(order))).toEqual(order);
    expect(() => parseOrder('seed=1:explode')).toThrow(/unknown action/);
  });

  it('only generates steps that are possible where they stand (200 seeds, both live-restore settings)', () => {
    for (const liveRestore of [true, false]) {
      for (let seed = 1; seed <= 200; seed += 1) {
        const order = generateOrder(seed, { ...options, liveRestore });
        expect(order.steps).toHaveLength(12);
        assertPossible(order, liveRestore, options.containers);
      }
    }
  });

  it('the CI seeds (one order per variant) cover every action; each grows first, stops a grown container with the agent down and up, and restarts dockerd after a grow', () => {
    const orders = DM_SEQ_CI_VARIANTS.flatMap((variant) =>
      DM_SEQ_CI_SEEDS[variant].map((seed) => {
        const liveRestore = DM_SEQ_LIVE_RESTORE[variant];
        const order = generateOrder(seed, {
          steps: DM_SEQ_STEPS,
          containers: DM_SEQ_CONTAINERS,
          liveRestore,
        });
        assertPossible(order, liveRestore, DM_SEQ_CONTAINERS);
        expect(order.steps[0]?.action.startsWith('grow')).toBe(true);
        const events = grownEvents(order);
        expect({ variant, seed, down: events.stopsWithAgentDown > 0 }).toEqual({ variant, seed, down: true });
        expect({ variant, seed, up: events.stopsWithAgentUp > 0 }).toEqual({ variant, seed, up: true });
        expect({ variant, seed, dockerd: events.dockerdRestarts > 0 }).toEqual({
          variant,
          seed,
          dockerd: true,
        });
        expect(stopsWhileAgentDown(order, liveRestore)).toBeGreaterThan(0);
        return order;
      }),
    );
    expect(orders).toHaveLength(DM_SEQ_CI_VARIANTS.length);
    const counts = actionCounts(orders);
    for (const action of DM_SEQ_ACTIONS) expect([action, counts.get(action)]).not.toEqual([action, 0]);
  });

  it('grownEvents counts only what happens to grown containers', () => {
    const events = grownEvents(
      parseOrder('seed=0:stop:c2 grow-once:c1 stop-start:c1 agent-start restart:c1 dockerd-restart stop:c2'),
    );
    expect(events).toEqual({ stopsWithAgentDown: 1, stopsWithAgentUp: 1, dockerdRestarts: 1 });
  });
});
