/**
 * A grow of a container that Docker removed while the grow ran (`docker rm -f` racing a grow,
 * found by the soak) is journaled as 'grow-container-gone': no backoff, no failure metric (so no
 * ResizeFailures alert), and it survives a journal replay as "forgotten", never as a failure.
 * A failure of a container that still exists stays a failure (the control).
 */
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/agent/journal.js';
import { HistoryStore } from '../../src/agent/history.js';
import { Reconciler } from '../../src/agent/reconciler.js';
import { parseConfigObject } from '../../src/config/load.js';
import { DockerInventory } from '../../src/docker/inventory.js';
import type { DockerEventSource } from '../../src/docker/events.js';
import type { DockerApi } from '../../src/docker/inventory-port.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { FakeBackend, FakeClock, GiB } from '../support/fake-backend.js';
import { fakeContainer, FakeInventory } from '../support/fake-inventory.js';
import { tempDir } from '../support/temp-dir.js';
import { parseExposition } from './metrics-exposition.js';

function setup(options: { removeDuringGrow: boolean }) {
  const directory = tempDir('grow-gone');
  const clock = new FakeClock();
  const backend = new FakeBackend(clock, { driver: 'btrfs', pool: null });
  const inventory = new FakeInventory();
  const journalPath = path.join(directory, 'journal.jsonl');
  const journal = new Journal({ path: journalPath, maxSizeBytes: 1 << 20, keep: 1 });
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const metrics = createMetrics({ processMetrics: false });
  const config = parseConfigObject({}, 'test');
  const reconciler = new Reconciler({
    inventory,
    backend,
    config,
    journal,
    clock,
    logger,
    onReport: (report) => metrics.applyPassReport(report),
  });
  const container = fakeContainer({ storageDriver: 'btrfs' });
  inventory.put(container);
  backend.addContainer(container.id, { sizeBytes: 10 * GiB, usedBytes: 9.5 * GiB });
  // the qgroup of a removed subvolume: what btrfs says when the container vanished mid-grow
  backend.failNextGrows(
    container.id,
    1,
    'ERROR: unable to limit requested quota group: No such file or directory',
  );
  if (options.removeDuringGrow) {
    const grow = backend.grow.bind(backend);
    backend.grow = async (request) => {
      inventory.emitDestroy(container.id);
      return await grow(request);
    };
  }
  const resizes = async () =>
    parseExposition(await metrics.registry.metrics())
      .filter((sample) => sample.name === 'docker_autogrow_resizes_total' && sample.value > 0)
      .map((sample) => [sample.labels.result, sample.value]);
  const failures = async () =>
    parseExposition(await metrics.registry.metrics())
      .filter((sample) => sample.name === 'docker_autogrow_grow_failures_total' && sample.value > 0)
      .map((sample) => sample.value);
  return { backend, journal, journalPath, reconciler, container, lines, resizes, failures, config };
}

describe('a grow of a container removed meanwhile', () => {
  it('is journaled as container-gone: no backoff, no failure metric, no grow-failed record', async () => {
    const h = setup({ removeDuringGrow: true });
    const report = await h.reconciler.runPass();
    expect(report.containers[0]?.outcome).toMatchObject({
      kind: 'container-gone',
      error: expect.stringContaining('No such file or directory'),
    });
    expect(report.containers[0]?.backoffUntilMs ?? null).toBeNull();
    const types = h.journal.replay().records.map((record) => record.type);
    expect(types).toEqual(['grow-started', 'grow-container-gone']);
    expect(await h.resizes()).toEqual([['container-gone', 1]]);
    expect(await h.failures()).toEqual([]);
    expect(h.lines.some((line) => line.msg === 'grow failed')).toBe(false);
    expect(
      h.lines.find((line) => line.msg === 'grow ended: the container was removed meanwhile'),
    ).toMatchObject({
      containerId: h.container.id,
    });
    // a restart replays it as closed and forgotten: no interrupted grow, no failure state
    const history = new HistoryStore(h.config.backoff);
    expect(history.replay(h.journal.replay().records).interruptedGrows).toEqual([]);
    expect(history.get(h.container.id)).toBeUndefined();
  });

  it('control: the same error for a container that still exists is a failure with backoff', async () => {
    const h = setup({ removeDuringGrow: false });
    const report = await h.reconciler.runPass();
    expect(report.containers[0]?.outcome).toMatchObject({ kind: 'failed' });
    expect(report.containers[0]?.backoffUntilMs).not.toBeNull();
    const types = h.journal.replay().records.map((record) => record.type);
    expect(types).toEqual(['grow-started', 'grow-failed']);
    expect(await h.resizes()).toEqual([['failed', 1]]);
    expect(await h.failures()).toEqual([1]);
  });
});

describe('DockerInventory.recheck', () => {
  const logger = pino({ level: 'silent' });
  function inventoryOver(inspect: DockerApi['inspectContainer']) {
    const api: DockerApi = {
      info: () => Promise.reject(new Error('not used')),
      listContainerIds: () => Promise.resolve([]),
      inspectContainer: inspect,
      ping: () => Promise.resolve(true),
    };
    // never started: recheck needs no event stream
    const events: DockerEventSource = { openEvents: () => Promise.reject(new Error('not used')) };
    return new DockerInventory({ api, events, logger, resyncIntervalMs: 60_000 });
  }

  it('says gone when inspect finds no container', async () => {
    const inventory = inventoryOver(() => Promise.resolve(null));
    expect(await inventory.recheck('a'.repeat(64))).toBe('gone');
  });

  it('says present for a container that exists, unknown when Docker does not answer', async () => {
    const present = inventoryOver(() => Promise.resolve(fakeContainer()));
    expect(await present.recheck('b'.repeat(64))).toBe('present');
    const down = inventoryOver(() => Promise.reject(new Error('connect ENOENT /run/docker.sock')));
    expect(await down.recheck('c'.repeat(64))).toBe('unknown');
  });
});
