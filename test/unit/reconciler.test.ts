import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closeInterruptedGrows } from '../../src/agent/history.js';
import { Journal } from '../../src/agent/journal.js';
import { Reconciler } from '../../src/agent/reconciler.js';
import type { Timers } from '../../src/util/clock.js';
import type { PassReport } from '../../src/report/pass-report.js';
import { parseConfigObject } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { StorageGrowError } from '../../src/storage/grow-error.js';
import { FakeBackend, FakeClock, GiB, MiB, type FakePoolOptions } from '../support/fake-backend.js';
import { fakeContainer, FakeInventory } from '../support/fake-inventory.js';

type LogLine = Record<string, unknown> & { msg: string; level: number };

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function tempJournalPath(): string {
  const directory = mkdtempSync(path.join(tmpdir(), 'autogrow-reconciler-'));
  directories.push(directory);
  return path.join(directory, 'journal.jsonl');
}

interface HarnessOptions {
  config?: ConfigInput;
  pool?: FakePoolOptions | null;
  journalPath?: string;
  clock?: FakeClock;
  backend?: FakeBackend;
  inventory?: FakeInventory;
  timers?: Timers;
}

function harness(options: HarnessOptions = {}) {
  const clock = options.clock ?? new FakeClock();
  const backend = options.backend ?? new FakeBackend(clock, { pool: options.pool });
  const inventory = options.inventory ?? new FakeInventory();
  const journalPath = options.journalPath ?? tempJournalPath();
  const journal = new Journal({ path: journalPath, maxSizeBytes: 1024 * 1024, keep: 2 });
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  );
  const config = parseConfigObject(options.config ?? {}, 'test');
  const reports: PassReport[] = [];
  const reconciler = new Reconciler({
    inventory,
    backend,
    config,
    journal,
    clock,
    logger,
    onReport: (report) => reports.push(report),
    ...(options.timers ? { timers: options.timers } : {}),
  });
  const add = (
    overrides: Partial<ContainerInfo>,
    state: Parameters<FakeBackend['addContainer']>[1],
  ): ContainerInfo => {
    const container = fakeContainer(overrides);
    inventory.put(container);
    backend.addContainer(container.id, state);
    return container;
  };
  /** Runs a pass every interval for `seconds` of simulated time. */
  const simulate = async (seconds: number, until?: () => boolean) => {
    const endMs = clock.nowMs() + seconds * 1000;
    while (clock.nowMs() < endMs) {
      await reconciler.runPass();
      if (until?.()) return;
      clock.advance(config.interval);
    }
  };
  const logs = (msg: string) => lines.filter((line) => line.msg === msg);
  return {
    clock,
    backend,
    inventory,
    journal,
    journalPath,
    lines,
    logs,
    config,
    reports,
    reconciler,
    add,
    simulate,
  };
}

function containerReport(report: PassReport, id: string) {
  const found = report.containers.find((container) => container.containerId === id);
  if (!found) throw new Error(`no report for ${id}`);
  return found;
}

describe('fill race with the default policy', () => {
  it.each([20, 100, 200, 300])(
    'a btrfs container starting at 512M with a writer at %i MiB/s never sees a write error',
    async (rateMiB) => {
      const h = harness();
      h.backend.growDurationMs = 300;
      const container = h.add({}, { sizeBytes: 512 * MiB, usedBytes: 16 * MiB });
      await h.reconciler.runPass();
      // The writer starts between two passes.
      h.clock.advance(400);
      h.backend.setFillRate(container.id, rateMiB * MiB);
      h.clock.advance(600);

      // Until usage nears the 100G maxSize: beyond it, ENOSPC is the configured outcome.
      await h.simulate(600, () => h.backend.state(container.id).usedBytes > 80 * GiB);

      const state = h.backend.state(container.id);
      expect(state.writeErrors).toBe(0);
      expect(state.sizeBytes).toBeGreaterThan(512 * MiB);
      const grown = h.logs('grow succeeded');
      expect(grown.length).toBeGreaterThan(0);
      expect(grown[0]).toMatchObject({
        containerId: container.id,
        fromBytes: 512 * MiB,
        trigger: 'predicted',
      });
      // A sustained writer is grown about once per horizon, not every pass.
      const simulatedSeconds = h.reports.length;
      expect(grown.length).toBeLessThanOrEqual(Math.ceil(simulatedSeconds / 20) + 2);
    },
  );

  it('a container filling at a steady rate is grown before it is full, by threshold without prediction', async () => {
    const h = harness({ config: { prediction: { enabled: false } } });
    const container = h.add({}, { sizeBytes: 2 * GiB, usedBytes: 1 * GiB, fillRateBytesPerSecond: 10 * MiB });

    await h.simulate(1200);

    const state = h.backend.state(container.id);
    expect(state.writeErrors).toBe(0);
    expect(state.sizeBytes).toBeGreaterThan(state.usedBytes);
    const grown = h.logs('grow succeeded');
    expect(grown.length).toBeGreaterThanOrEqual(3);
    expect(grown.every((line) => line.trigger === 'threshold')).toBe(true);
    const crossed = h.logs('threshold crossed');
    expect(crossed.length).toBe(grown.length);
    expect(crossed[0]).toMatchObject({ containerId: container.id, sizeBytes: 2 * GiB });
  });

  it('a burst triggers a predictive grow sized to the rate', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 2 * GiB });
    await h.simulate(5);

    h.backend.write(container.id, 300 * MiB);
    const report = await h.reconciler.runPass();

    const decision = containerReport(report, container.id).decision;
    expect(decision).toMatchObject({ kind: 'grow', trigger: 'predicted', fromBytes: 10 * GiB });
    const stepBytes = decision.kind === 'grow' ? decision.toBytes - decision.fromBytes : 0;
    expect(stepBytes).toBeGreaterThanOrEqual(300 * MiB * 30);
    expect(stepBytes).toBeLessThanOrEqual(50 * GiB);
    expect(containerReport(report, container.id).timeToFullSeconds).toBeLessThan(30);
  });
});

describe('cooldown', () => {
  // 10G at 84% filling at 5 MiB/s with a 10m cooldown: the first grow (to 12G) comes at the
  // threshold; the next crossing (85% of 12G) comes ~6 minutes later, inside the cooldown.
  const cooldownConfig: ConfigInput = { defaults: { cooldown: '10m' } };

  async function growOnceThenCross(h: ReturnType<typeof harness>, id: string) {
    await h.simulate(120, () => h.logs('grow succeeded').length === 1);
    expect(h.backend.state(id).sizeBytes).toBe(12 * GiB);
    const grownAtMs = h.clock.nowMs();
    h.clock.advance(1000);
    await h.simulate(420);
    return grownAtMs;
  }

  it('holds after a grow until it ends, then grows again', async () => {
    const h = harness({ config: cooldownConfig });
    const container = h.add(
      {},
      { sizeBytes: 10 * GiB, usedBytes: 8.4 * GiB, fillRateBytesPerSecond: 5 * MiB },
    );

    const grownAtMs = await growOnceThenCross(h, container.id);

    const last = containerReport(h.reports.at(-1)!, container.id);
    expect(last.decision).toMatchObject({ kind: 'skip', reason: 'cooldown' });
    expect(h.logs('grow succeeded')).toHaveLength(1);
    await h.simulate(600, () => h.logs('grow succeeded').length === 2);
    expect(h.logs('grow succeeded')).toHaveLength(2);
    expect(h.clock.nowMs() - grownAtMs).toBeGreaterThanOrEqual(600_000);
    expect(h.backend.state(container.id).writeErrors).toBe(0);
  });

  it('an agent restart mid-cooldown still holds it (journal)', async () => {
    const journalPath = tempJournalPath();
    const clock = new FakeClock();
    const backend = new FakeBackend(clock);
    const inventory = new FakeInventory();
    const first = harness({ config: cooldownConfig, journalPath, clock, backend, inventory });
    const container = first.add(
      {},
      { sizeBytes: 10 * GiB, usedBytes: 8.4 * GiB, fillRateBytesPerSecond: 5 * MiB },
    );
    await growOnceThenCross(first, container.id);
    await first.reconciler.stop();

    const restarted = harness({ config: cooldownConfig, journalPath, clock, backend, inventory });
    await restarted.simulate(30);
    const withoutJournal = harness({ config: cooldownConfig, clock, backend, inventory });
    const control = await withoutJournal.reconciler.runPass({ dryRun: true });

    expect(containerReport(restarted.reports.at(-1)!, container.id).decision).toMatchObject({
      reason: 'cooldown',
    });
    expect(restarted.logs('grow succeeded')).toHaveLength(0);
    expect(containerReport(control, container.id).decision).toMatchObject({ reason: 'dry-run' });
  });
});

describe('grows made by another process (the grow and once commands)', () => {
  it("a manual grow in another process starts the running daemon's cooldown at its next pass", async () => {
    const journalPath = tempJournalPath();
    const clock = new FakeClock();
    const backend = new FakeBackend(clock);
    const inventory = new FakeInventory();
    const daemon = harness({ journalPath, clock, backend, inventory });
    const control = harness({ clock, backend, inventory }); // a daemon that never sees that journal
    // 9.5 GiB used: over the 85% threshold at 10 GiB and still at 11 GiB
    const container = daemon.add({}, { sizeBytes: 10 * GiB, usedBytes: 9.5 * GiB });
    daemon.reconciler.loadJournal();
    control.reconciler.loadJournal();

    // `docker-autogrow grow` runs as its own process with its own reconciler on the same journal
    const cli = harness({ journalPath, clock, backend, inventory });
    const manual = await cli.reconciler.growNow(container, { toBytes: 11 * GiB });
    expect(manual.result).toBe('grown');
    clock.advance(1000);

    const next = await daemon.reconciler.runPass({ dryRun: true });
    expect(containerReport(next, container.id).decision).toMatchObject({ kind: 'skip', reason: 'cooldown' });
    expect(daemon.reconciler.containerHistory(container.id)?.lastGrowToBytes).toBe(11 * GiB);
    const unaware = await control.reconciler.runPass({ dryRun: true });
    expect(containerReport(unaware, container.id).decision).toMatchObject({ reason: 'dry-run' });
    // its own records, read back, change nothing
    const again = await daemon.reconciler.runPass({ dryRun: true });
    expect(containerReport(again, container.id).decision).toMatchObject({ reason: 'cooldown' });
  });

  it('a grow read back for a container destroyed since does not bring its history back', async () => {
    const timers: Timers = { setTimeout: () => null, clearTimeout: () => undefined };
    const h = harness({ timers });
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9.5 * GiB });
    await h.reconciler.start();
    await h.reconciler.runPass();
    expect(h.reconciler.containerHistory(container.id)?.lastGrowAtMs).not.toBeNull();
    h.inventory.emitDestroy(container.id);
    expect(h.reconciler.containerHistory(container.id)).toBeUndefined();
    // the next pass reads back [grow-succeeded, container-forgotten] from the journal
    await h.reconciler.runPass();
    expect(h.reconciler.containerHistory(container.id)).toBeUndefined();
    await h.reconciler.stop();
  });

  it('a line still being written is read at the next pass, whole', () => {
    const journalPath = tempJournalPath();
    const journal = new Journal({ path: journalPath, maxSizeBytes: 1024 * 1024, keep: 2 });
    expect(journal.readAppended()).toEqual([]);
    const record = {
      v: 1,
      type: 'grow-succeeded',
      atMs: 5,
      containerId: 'a'.repeat(64),
      name: 'x',
      trigger: 'manual',
      fromBytes: 1,
      toBytes: 2,
      requestedBytes: 2,
      durationMs: 1,
      noop: false,
      steps: [],
    };
    const line = `${JSON.stringify(record)}\n`;
    appendFileSync(journalPath, line.slice(0, 20));
    expect(journal.readAppended()).toEqual([]);
    appendFileSync(journalPath, line.slice(20));
    expect(journal.readAppended()).toMatchObject([{ type: 'grow-succeeded', toBytes: 2 }]);
    expect(journal.readAppended()).toEqual([]);
  });
});

describe('failure backoff', () => {
  it('backs off exponentially, shows it in the report, and survives a restart', async () => {
    const journalPath = tempJournalPath();
    const h = harness({ journalPath });
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    h.backend.failNextGrows(container.id, 3, 'btrfs qgroup limit failed');

    const first = await h.reconciler.runPass();
    const firstReport = containerReport(first, container.id);
    expect(firstReport.outcome).toMatchObject({ kind: 'failed', error: 'btrfs qgroup limit failed' });
    expect(firstReport.backoffUntilMs).toBe(h.clock.nowMs() + 10_000);
    expect(h.logs('grow failed')[0]).toMatchObject({
      containerId: container.id,
      fromBytes: 10 * GiB,
      trigger: 'threshold',
    });

    h.clock.advance(5_000);
    const during = await h.reconciler.runPass();
    expect(containerReport(during, container.id)).toMatchObject({
      decision: { kind: 'skip', reason: 'backoff' },
      backoffUntilMs: h.clock.nowMs() + 5_000,
    });

    h.clock.advance(5_000);
    await h.reconciler.runPass(); // second failure: 20s
    const restarted = harness({ journalPath, clock: h.clock, backend: h.backend, inventory: h.inventory });
    h.clock.advance(19_000);
    const afterRestart = await restarted.reconciler.runPass();
    expect(containerReport(afterRestart, container.id).decision).toMatchObject({ reason: 'backoff' });

    h.clock.advance(1_000);
    await restarted.reconciler.runPass(); // third failure: 40s
    h.clock.advance(40_000);
    const recovered = await restarted.reconciler.runPass();
    expect(containerReport(recovered, container.id).outcome).toMatchObject({
      kind: 'grown',
      toBytes: 12 * GiB,
    });
    expect(containerReport(recovered, container.id).backoffUntilMs).toBeNull();
    expect(h.backend.grows).toHaveLength(4);
  });

  it('treats a grow that reports success without growing as a failure', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    h.backend.grow = async (request) => ({
      containerId: request.container.id,
      fromBytes: request.fromBytes,
      toBytes: request.fromBytes,
      steps: [],
      dryRun: false,
      noop: false,
    });

    const report = await h.reconciler.runPass();

    expect(containerReport(report, container.id).outcome).toMatchObject({ kind: 'failed' });
    expect(containerReport(report, container.id).backoffUntilMs).not.toBeNull();
  });
});

describe('a pass', () => {
  it('serves the rest of the host when one container fails to observe or to grow', async () => {
    const h = harness();
    const unreadable = h.add({ name: 'unreadable' }, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    const failing = h.add({ name: 'failing' }, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    const healthy = h.add({ name: 'healthy' }, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    const badLabels = h.add(
      { name: 'bad-labels', labels: { 'autogrow.threshold': 'ninety', 'autogrow.max-size': '-1' } },
      { sizeBytes: 10 * GiB, usedBytes: 9 * GiB },
    );
    h.backend.setObserveError(unreadable.id, 'qgroup not found');
    h.backend.failNextGrows(failing.id, 1);

    const report = await h.reconciler.runPass();
    await h.reconciler.runPass();

    expect(containerReport(report, unreadable.id).decision).toMatchObject({ reason: 'usage-unknown' });
    expect(containerReport(report, failing.id).outcome).toMatchObject({ kind: 'failed' });
    expect(containerReport(report, healthy.id).outcome).toMatchObject({ kind: 'grown', toBytes: 12 * GiB });
    expect(containerReport(report, badLabels.id).outcome).toMatchObject({ kind: 'grown', toBytes: 12 * GiB });
    expect(containerReport(report, badLabels.id).labelWarnings).toHaveLength(2);
    // Warned once per container and text, not every pass.
    expect(h.logs('label ignored')).toHaveLength(2);
    expect(h.logs('label ignored')[0]).toMatchObject({ name: 'bad-labels', level: 40 });
  });

  it('reports the pass error and decides nothing when the whole observation fails', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    h.backend.observeError = new Error('btrfs qgroup show timed out');

    const report = await h.reconciler.runPass();

    expect(report.errors).toEqual(['observe failed: btrfs qgroup show timed out']);
    expect(report.probes).toEqual([
      expect.objectContaining({ ok: false, error: 'btrfs qgroup show timed out' }),
    ]);
    expect(containerReport(report, container.id).decision).toMatchObject({ reason: 'usage-unknown' });
    expect(h.backend.grows).toHaveLength(0);
    expect(h.logs('pass')[0]).toMatchObject({ level: 30, containers: 1 });
  });

  it('fills in the report: usage, rule, max size, decision, time to full, outcome', async () => {
    const h = harness({
      config: { rules: [{ name: 'web', match: { name: 'web-*' }, maxSize: '40G' }] },
    });
    const container = h.add(
      { name: 'web-1' },
      { sizeBytes: 10 * GiB, usedBytes: 8 * GiB, fillRateBytesPerSecond: MiB },
    );
    await h.reconciler.runPass();
    h.clock.advance(1000);

    const report = await h.reconciler.runPass();

    expect(report).toMatchObject({ driver: 'btrfs', dryRun: false, errors: [] });
    expect(report.pool).toMatchObject({ name: 'fake-pool', kind: 'filesystem' });
    expect(containerReport(report, container.id)).toMatchObject({
      name: 'web-1',
      driver: 'btrfs',
      usage: { sizeBytes: 10 * GiB },
      ruleName: 'web',
      maxSizeBytes: 40 * GiB,
      decision: { kind: 'skip', reason: 'below-threshold' },
      labelWarnings: [],
      backoffUntilMs: null,
    });
    expect(containerReport(report, container.id).timeToFullSeconds).toBeCloseTo(2047, 0);
  });

  it('logs the pass summary at debug when nothing changed and at info when something happened', async () => {
    const h = harness();
    h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    await h.reconciler.runPass();
    await h.reconciler.runPass();
    await h.reconciler.runPass();

    expect(h.logs('pass').map((line) => line.level)).toEqual([30, 20, 20]);
    expect(h.logs('pass')[1]).toMatchObject({
      containers: 1,
      grown: 0,
      failed: 0,
      skipped: { 'below-threshold': 1 },
    });
  });

  it('plans on dry run: exact steps, nothing grown, nothing journaled', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });

    const report = await h.reconciler.runPass({ dryRun: true });

    expect(report.dryRun).toBe(true);
    expect(containerReport(report, container.id)).toMatchObject({
      decision: { kind: 'skip', reason: 'dry-run', wouldGrow: { toBytes: 12 * GiB } },
      outcome: {
        kind: 'planned',
        fromBytes: 10 * GiB,
        toBytes: 12 * GiB,
        steps: [['fake', 'grow', container.id, String(12 * GiB)]],
      },
    });
    expect(h.backend.grows).toHaveLength(0);
    expect(h.journal.replay().records).toHaveLength(0);
  });

  it('considers only running containers the backend observed', async () => {
    const h = harness();
    const running = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });
    h.add({ running: false, state: 'exited' }, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });
    h.inventory.put(fakeContainer({ name: 'unknown-to-backend' }));

    const report = await h.reconciler.runPass();

    expect(report.containers.map((container) => container.containerId)).toEqual([running.id]);
  });

  it('journals each grow with before and after sizes', async () => {
    const h = harness();
    h.backend.growDurationMs = 1500;
    const container = h.add({ name: 'db' }, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });

    await h.reconciler.runPass();

    const records = h.journal.replay().records;
    expect(records.map((record) => record.type)).toEqual(['grow-started', 'grow-succeeded']);
    expect(records[1]).toMatchObject({
      containerId: container.id,
      name: 'db',
      fromBytes: 10 * GiB,
      toBytes: 12 * GiB,
      durationMs: 1500,
      trigger: 'threshold',
    });
    expect(h.logs('grow succeeded')[0]).toMatchObject({
      durationMs: 1500,
      fromBytes: 10 * GiB,
      toBytes: 12 * GiB,
    });
  });
});

describe('single flight, locks and concurrency', () => {
  function gate() {
    let open!: () => void;
    const promise = new Promise<void>((resolve) => (open = resolve));
    return { promise, open };
  }

  it('coalesces passes requested during a pass into one follow-up', async () => {
    const h = harness();
    const a = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    const b = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });
    const held = gate();
    h.backend.gate = held.promise;

    const first = h.reconciler.runPass();
    await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    const second = h.reconciler.runPass({ onlyContainerId: b.id });
    const third = h.reconciler.runPass();
    const fourth = h.reconciler.runPass({ onlyContainerId: a.id });
    held.open();
    const reports = await Promise.all([first, second, third, fourth]);

    expect(h.backend.observedIds).toHaveLength(2);
    expect(reports[1]).toBe(reports[2]);
    expect(reports[2]).toBe(reports[3]);
    expect(reports[0]).not.toBe(reports[1]);
    expect(reports[1]!.containers).toHaveLength(2);
    expect(reports[1]!.onlyContainerIds).toBeUndefined();
  });

  it('marks a one-container pass as partial and keeps lastReport whole', async () => {
    const h = harness();
    const a = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });
    h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });
    const whole = await h.reconciler.runPass();

    const partial = await h.reconciler.runPass({ onlyContainerId: a.id });

    expect(partial.onlyContainerIds).toEqual([a.id]);
    expect(partial.containers.map((container) => container.containerId)).toEqual([a.id]);
    expect(h.reconciler.lastReport).toBe(whole);
  });

  it('skips a container whose manual grow is running, and respects the concurrency limit', async () => {
    const h = harness({ config: { concurrency: 2 } });
    const containers = [0, 1, 2, 3].map(() => h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB }));
    let running = 0;
    let maxRunning = 0;
    const originalGrow = h.backend.grow.bind(h.backend);
    const held = gate();
    h.backend.grow = async (request) => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      await held.promise;
      try {
        return await originalGrow(request);
      } finally {
        running -= 1;
      }
    };

    const manual = h.reconciler.growNow(containers[0]!, { byBytes: 1 * GiB });
    await new Promise((resolve) => setImmediate(resolve));
    const pass = h.reconciler.runPass();
    await new Promise((resolve) => setImmediate(resolve));
    expect(maxRunning).toBe(2);
    held.open();
    const [manualReport, report] = await Promise.all([manual, pass]);

    expect(manualReport).toMatchObject({ result: 'grown', toBytes: 11 * GiB });
    expect(containerReport(report, containers[0]!.id).decision).toMatchObject({ reason: 'in-flight' });
    expect(report.containers.filter((container) => container.outcome?.kind === 'grown')).toHaveLength(3);
    expect(maxRunning).toBe(2);
  });
});

describe('journal on the grow path', () => {
  it('writes grow-started without waiting for the disk, and fsyncs the end record', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    const append = vi.spyOn(h.journal, 'append');
    await h.reconciler.runPass();
    const calls = append.mock.calls.map(([entry, options]) => [entry.type, options?.durable ?? true]);
    expect(calls).toEqual([
      ['grow-started', false],
      ['grow-succeeded', true],
    ]);
    // and the unsynced record is in the file for the replay
    expect(h.journal.replay().records.map((record) => record.type)).toEqual([
      'grow-started',
      'grow-succeeded',
    ]);
    expect(h.backend.state(container.id).sizeBytes).toBeGreaterThan(10 * GiB);
  });
});

describe('fill guard: a writer faster than the pass interval', () => {
  /** Timers on the simulated clock: callbacks run in time order as the clock moves. */
  function simulatedTimers(clock: FakeClock) {
    const queue = new Set<{ atMs: number; callback: () => void }>();
    const timers: Timers = {
      setTimeout: (callback, delayMs) => {
        const entry = { atMs: clock.nowMs() + delayMs, callback };
        queue.add(entry);
        return entry;
      },
      clearTimeout: (handle) => {
        queue.delete(handle as { atMs: number; callback: () => void });
      },
    };
    const runUntil = async (endMs: number) => {
      for (;;) {
        const next = [...queue].sort((a, b) => a.atMs - b.atMs)[0];
        if (!next || next.atMs > endMs) break;
        queue.delete(next);
        if (next.atMs > clock.nowMs()) clock.set(next.atMs);
        next.callback();
        for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
      }
      clock.set(Math.max(clock.nowMs(), endMs));
    };
    return { timers, runUntil };
  }

  async function race(guardEnabled: boolean) {
    const clock = new FakeClock();
    const { timers, runUntil } = simulatedTimers(clock);
    const h = harness({ clock, timers, config: { guard: { enabled: guardEnabled } } });
    // each grow takes 60 ms of simulated time, as a real one can under a writer
    h.backend.growDurationMs = 60;
    const container = h.add({ name: 'race' }, { sizeBytes: 512 * MiB, usedBytes: 0 });
    const startMs = clock.nowMs();
    await h.reconciler.start();
    await runUntil(startMs + 2_300);
    // dd at the measured page-cache speed, starting between two passes
    h.backend.setFillRate(container.id, 2.8 * GiB);
    await runUntil(startMs + 3_300);
    h.backend.setFillRate(container.id, 0);
    await h.reconciler.stop();
    return { h, container };
  }

  it('with the guard (the default), a 2.8 GiB/s writer never meets the 512 MiB limit', async () => {
    const { h, container } = await race(true);
    expect(h.backend.state(container.id).writeErrors).toBe(0);
    expect(h.backend.grows.length).toBeGreaterThan(0);
    expect(h.backend.grows[0]).toMatchObject({ fromBytes: 512 * MiB });
    expect(h.logs('fill guard triggered').length).toBeGreaterThan(0);
    // the looks cost no process: only reads through the fast path
    expect(h.backend.liveReads).toBeGreaterThan(0);
    expect(h.reconciler.guardStats).toMatchObject({ evaluations: h.logs('fill guard triggered').length });
    expect(h.logs('fill guard')).toMatchObject([{ enabled: true, peakWriteBytesPerSecond: 4 * GiB }]);
  });

  it('without it, the 1 s passes lose the same race (so the test above can fail)', async () => {
    const { h, container } = await race(false);
    expect(h.backend.state(container.id).writeErrors).toBeGreaterThan(0);
    expect(h.backend.liveReads).toBe(0);
    expect(h.reconciler.guardStats).toBeNull();
    expect(h.logs('fill guard')).toMatchObject([{ enabled: false, why: 'guard.enabled is false' }]);
  });
});

describe('lifecycle and events', () => {
  function manualTimers() {
    const queue: Array<{ callback: () => void; delayMs: number }> = [];
    const timers: Timers = {
      setTimeout: (callback, delayMs) => {
        const entry = { callback, delayMs };
        queue.push(entry);
        return entry;
      },
      clearTimeout: (handle) => {
        const index = queue.indexOf(handle as (typeof queue)[number]);
        if (index >= 0) queue.splice(index, 1);
      },
    };
    return { queue, timers };
  }

  it('passes now and then every interval after the previous pass ends', async () => {
    const { queue, timers } = manualTimers();
    const h = harness({ timers });
    h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    await h.reconciler.start();
    expect(queue.map((entry) => entry.delayMs)).toEqual([0]);
    queue.shift()!.callback();
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));

    expect(h.reports).toHaveLength(1);
    expect(queue.map((entry) => entry.delayMs)).toEqual([1000]);
    await h.reconciler.stop();
    expect(queue).toHaveLength(0);
  });

  it('skips a scheduled pass while the change token, the inventory and the timers stand still', async () => {
    const { queue, timers } = manualTimers();
    const h = harness({ timers });
    let token = 't0';
    Object.assign(h.backend, { readChangeToken: () => token });
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });
    await h.reconciler.start();
    const tick = async () => {
      h.clock.advance(1000);
      queue.shift()!.callback();
      for (let i = 0; i < 4; i += 1) await new Promise((resolve) => setImmediate(resolve));
    };
    await tick(); // the first pass (delay 0)
    expect(h.reports).toHaveLength(1);
    for (let i = 0; i < 5; i += 1) await tick();
    // nothing moved: no pass, no report, no metric write; the schedule keeps going
    expect(h.reports).toHaveLength(1);
    expect(h.reconciler.quietPassesSkipped).toBe(5);
    expect(queue.map((entry) => entry.delayMs)).toEqual([1000]);
    // usage moved: the token shows it and the next tick passes
    token = 't1';
    await tick();
    expect(h.reports).toHaveLength(2);
    await tick();
    expect(h.reports).toHaveLength(2);
    // an event the token cannot show (a stop) makes the next tick pass
    h.inventory.emitStop(container.id);
    await tick();
    expect(h.reports).toHaveLength(3);
    // and at least every QUIET_PASS_MAX_SKIP_MS, whatever the token says
    for (let i = 0; i < 30; i += 1) await tick();
    expect(h.reports).toHaveLength(4);
    await h.reconciler.stop();
  });

  it('never skips a pass after one that left work: a grow, an error, a container over its threshold', async () => {
    const { queue, timers } = manualTimers();
    const h = harness({ timers });
    Object.assign(h.backend, { readChangeToken: () => 'same' });
    h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9.5 * GiB });
    await h.reconciler.start();
    for (let i = 0; i < 4; i += 1) {
      h.clock.advance(1000);
      queue.shift()!.callback();
      for (let j = 0; j < 6; j += 1) await new Promise((resolve) => setImmediate(resolve));
    }
    // the first pass grew (a limit the token does not show), the next one must look again
    expect(h.reports.length).toBeGreaterThanOrEqual(2);
    expect(h.reports[0]!.containers[0]!.outcome?.kind).toBe('grown');
    await h.reconciler.stop();
  });

  it('evaluates a started container at once, tells the backend about stops, forgets destroyed ones', async () => {
    const { timers } = manualTimers();
    const h = harness({ timers });
    const other = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });
    const container = fakeContainer({ name: 'new' });
    h.backend.addContainer(container.id, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    h.backend.failNextGrows(container.id, 1);
    await h.reconciler.start();
    expect(h.backend.recovered).toEqual([other.id]);

    h.inventory.emitStart(container);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.backend.observedIds).toEqual([[other.id, container.id]]);
    expect(h.reports.at(-1)!.onlyContainerIds).toBeUndefined();
    expect(h.reconciler.containerHistory(container.id)?.consecutiveFailures).toBe(1);

    h.inventory.emitStop(container.id);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.backend.stopped).toEqual([container.id]);

    h.inventory.emitDestroy(container.id);
    expect(h.reconciler.containerHistory(container.id)).toBeUndefined();
    expect(h.journal.replay().records.at(-1)).toMatchObject({
      type: 'container-forgotten',
      containerId: container.id,
    });
    await h.reconciler.stop();
    expect(h.inventory.listenerCount).toBe(0);
  });

  it('stop() waits for a running grow to finish', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    let open!: () => void;
    h.backend.gate = new Promise<void>((resolve) => (open = resolve));
    const pass = h.reconciler.runPass();
    await new Promise((resolve) => setImmediate(resolve));

    let stopped = false;
    const stopping = h.reconciler.stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    open();
    await stopping;

    expect(stopped).toBe(true);
    expect(h.backend.state(container.id).sizeBytes).toBe(12 * GiB);
    expect(containerReport(await pass, container.id).outcome).toMatchObject({ kind: 'grown' });
  });

  it('grows at once after one interrupted grow (closed as recovered), backs off after two in a row', async () => {
    const journalPath = tempJournalPath();
    const h = harness({ journalPath });
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9.9 * GiB });
    const started = () =>
      h.journal.append({
        type: 'grow-started',
        atMs: h.clock.nowMs() - 1000,
        containerId: container.id,
        name: container.name,
        fromBytes: 10 * GiB,
        toBytes: 12 * GiB,
        trigger: 'threshold',
        why: 'test',
      });
    started();
    // what the owner does at its start, before the reconciler reads the journal
    expect(closeInterruptedGrows(h.journal, h.config.backoff, h.clock.nowMs())).toMatchObject([
      { type: 'grow-recovered', consecutiveInterruptions: 1, backoffUntilMs: null },
    ]);
    expect(closeInterruptedGrows(h.journal, h.config.backoff, h.clock.nowMs())).toEqual([]);

    const report = await h.reconciler.runPass();
    expect(containerReport(report, container.id).decision).toMatchObject({ kind: 'grow' });
    expect(h.logs('grow not finished: still running in another process, or interrupted')).toHaveLength(0);

    // a grow that kills the agent twice in a row is not retried at every restart
    const restarted = harness({ journalPath });
    restarted.add(container, { sizeBytes: 10 * GiB, usedBytes: 9.9 * GiB });
    restarted.clock.advance(24 * 3600_000); // past the cooldown of the grow above
    const close = () =>
      closeInterruptedGrows(restarted.journal, restarted.config.backoff, restarted.clock.nowMs());
    started();
    expect(close()).toMatchObject([{ consecutiveInterruptions: 1, backoffUntilMs: null }]);
    started();
    const closed = close();
    expect(closed).toMatchObject([{ consecutiveInterruptions: 2, consecutiveFailures: 1 }]);
    expect(closed[0]!.backoffUntilMs).toBeGreaterThan(restarted.clock.nowMs());
    const again = await restarted.reconciler.runPass();
    expect(containerReport(again, container.id).decision).toMatchObject({ reason: 'backoff' });
  });
});

describe('pool growth', () => {
  it('grows a thin pool past its threshold when enabled, journaled', async () => {
    const h = harness({
      config: { pool: { grow: { enabled: true } } },
      pool: { kind: 'thin-pool-loop', dataTotalBytes: 100 * GiB, baseUsedBytes: 80 * GiB },
    });
    h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    const report = await h.reconciler.runPass();

    expect(report.poolAction).toEqual({ kind: 'grown', fromBytes: 100 * GiB, toBytes: 120 * GiB });
    expect(h.journal.replay().records.map((record) => record.type)).toEqual([
      'pool-grow-started',
      'pool-grow-succeeded',
    ]);
    expect(h.logs('pool grow succeeded')).toHaveLength(1);
  });

  it('journals and logs the failed step and what it left behind when a pool grow fails', async () => {
    const h = harness({
      config: { pool: { grow: { enabled: true } } },
      pool: { kind: 'thin-pool-loop', dataTotalBytes: 100 * GiB, baseUsedBytes: 80 * GiB },
    });
    h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });
    h.backend.nextPoolGrowFailure = new StorageGrowError(
      'losetup -c failed',
      'losetup -c',
      'grown-fs-pending',
    );

    const report = await h.reconciler.runPass();

    expect(report.poolAction).toMatchObject({ kind: 'failed', error: 'losetup -c failed' });
    const failed = h.journal.replay().records.find((record) => record.type === 'pool-grow-failed');
    expect(failed).toMatchObject({ step: 'losetup -c', deviceState: 'grown-fs-pending' });
    expect(h.logs('pool grow failed')[0]).toMatchObject({
      step: 'losetup -c',
      deviceState: 'grown-fs-pending',
    });
  });

  it('stops growing containers and says why when the pool is low and may not grow', async () => {
    const h = harness({
      pool: { kind: 'thin-pool-loop', dataTotalBytes: 100 * GiB, baseUsedBytes: 80 * GiB },
    });
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });

    const report = await h.reconciler.runPass();

    expect(containerReport(report, container.id).decision).toMatchObject({ reason: 'pool-reserve' });
    expect(report.poolAction).toMatchObject({ kind: 'needed-but-disabled' });
    expect(report.poolAction?.error).toMatch(/pool growth is disabled/);
  });
});

describe('manual grow (the grow command)', () => {
  it('grows now, bypassing threshold and cooldown, journaled, and starts the cooldown', async () => {
    const h = harness();
    const container = h.add({ name: 'db' }, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    const report = await h.reconciler.growNow(container, { toBytes: 15 * GiB });
    h.clock.advance(1000);
    h.backend.write(container.id, 12 * GiB);
    const next = await h.reconciler.runPass();

    expect(report).toMatchObject({ result: 'grown', fromBytes: 10 * GiB, toBytes: 15 * GiB, warnings: [] });
    expect(h.backend.state(container.id).sizeBytes).toBe(15 * GiB);
    expect(h.logs('grow succeeded')[0]).toMatchObject({ trigger: 'manual', name: 'db' });
    expect(h.journal.replay().records.map((record) => record.type)).toEqual([
      'grow-started',
      'grow-succeeded',
    ]);
    // 13G of 15G used but filling at an unknown rate: the cooldown after the manual grow holds.
    expect(containerReport(next, container.id).decision).toMatchObject({ reason: 'cooldown' });
  });

  it('accepts an increment and rounds the target up to a whole MiB', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    const report = await h.reconciler.growNow(container, { byBytes: 1000 });

    expect(report).toMatchObject({ result: 'grown', toBytes: 10 * GiB + MiB });
  });

  it('never shrinks', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    const report = await h.reconciler.growNow(container, { toBytes: 5 * GiB });

    expect(report).toMatchObject({ result: 'noop', fromBytes: 10 * GiB, toBytes: 10 * GiB });
    expect(report.why).toMatch(/never shrinks/);
    expect(h.backend.grows).toHaveLength(0);
  });

  it('refuses beyond maxSize unless forced, with a warning when forced', async () => {
    const h = harness();
    const container = h.add(
      { labels: { 'autogrow.max-size': '20G' } },
      { sizeBytes: 10 * GiB, usedBytes: 1 * GiB },
    );

    const refused = await h.reconciler.growNow(container, { toBytes: 30 * GiB });
    const forced = await h.reconciler.growNow(container, { toBytes: 30 * GiB }, { force: true });

    expect(refused).toMatchObject({ result: 'refused', reason: 'at-max-size' });
    expect(refused.why).toMatch(/--force/);
    expect(forced).toMatchObject({ result: 'grown', toBytes: 30 * GiB });
    expect(forced.warnings).toEqual([expect.stringMatching(/forced beyond maxSize 20GiB \(label\)/)]);
  });

  it('refuses through the pool reserve unless forced, and never on an unhealthy pool', async () => {
    const h = harness({
      pool: { kind: 'thin-pool-loop', dataTotalBytes: 100 * GiB, baseUsedBytes: 90 * GiB },
    });
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    const refused = await h.reconciler.growNow(container, { toBytes: 12 * GiB });
    const forced = await h.reconciler.growNow(container, { toBytes: 12 * GiB }, { force: true });
    h.backend.pool!.needsCheck = true;
    const unhealthy = await h.reconciler.growNow(container, { toBytes: 14 * GiB }, { force: true });

    expect(refused).toMatchObject({ result: 'refused', reason: 'pool-reserve' });
    expect(forced).toMatchObject({ result: 'grown' });
    expect(forced.warnings).toEqual([expect.stringMatching(/forced through the pool limit/)]);
    expect(unhealthy).toMatchObject({ result: 'refused', reason: 'pool-unhealthy' });
  });

  it('plans only on dry run (the option or config.dryRun)', async () => {
    const h = harness({ config: { dryRun: true } });
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    const report = await h.reconciler.growNow(container, { toBytes: 12 * GiB });

    expect(report).toMatchObject({
      result: 'planned',
      outcome: { kind: 'planned', steps: [['fake', 'grow', container.id, String(12 * GiB)]] },
    });
    expect(h.backend.grows).toHaveLength(0);
  });

  it('refuses a container without a limit or without observed usage', async () => {
    const h = harness();
    const unlimited = h.add({}, { sizeBytes: null, usedBytes: 1 * GiB });
    const unseen = fakeContainer();

    expect(await h.reconciler.growNow(unlimited, { byBytes: GiB })).toMatchObject({
      result: 'refused',
      reason: 'no-limit',
    });
    expect(await h.reconciler.growNow(unseen, { byBytes: GiB })).toMatchObject({
      result: 'refused',
      reason: 'usage-unknown',
    });
  });

  it('reports a failed manual grow and starts the backoff', async () => {
    const h = harness();
    const container = h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });
    h.backend.failNextGrows(container.id, 1, 'qgroup limit: permission denied');

    const report = await h.reconciler.growNow(container, { toBytes: 12 * GiB });

    expect(report).toMatchObject({ result: 'failed', why: 'grow failed: qgroup limit: permission denied' });
    expect(h.reconciler.containerHistory(container.id)).toMatchObject({ consecutiveFailures: 1 });
  });
});

describe('pass log levels', () => {
  it('a dry-run daemon logs its unchanged plan once at info, then at debug', async () => {
    const h = harness({ config: { dryRun: true } });
    h.add({}, { sizeBytes: 10 * GiB, usedBytes: 9 * GiB });

    await h.simulate(3);

    expect(h.logs('pass').map((line) => line.level)).toEqual([30, 20, 20]);
    expect(h.logs('pass')[0]).toMatchObject({ planned: 1, dryRun: true });
  });

  it('a pool that needs growth it may not get is logged when that starts, not every pass', async () => {
    const h = harness({
      pool: { kind: 'thin-pool-loop', dataTotalBytes: 100 * GiB, baseUsedBytes: 81 * GiB },
    });
    h.add({}, { sizeBytes: 10 * GiB, usedBytes: 1 * GiB });

    await h.simulate(3);

    expect(h.reports.at(-1)!.poolAction).toMatchObject({ kind: 'needed-but-disabled' });
    expect(h.logs('pass').map((line) => line.level)).toEqual([30, 20, 20]);
  });
});
