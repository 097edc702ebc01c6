/**
 * Failure details: the step a grow broke in and what it left the storage as travel from the
 * backend's error (src/storage/grow-error.ts) into the journal's grow-failed record, the pass report,
 * the log line and docker_autogrow_grow_failures_total{driver,step}.
 */
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/agent/journal.js';
import { Reconciler } from '../../src/agent/reconciler.js';
import { parseConfigObject } from '../../src/config/load.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { DevicemapperGrowError } from '../../src/storage/devicemapper/index.js';
import { GrowProgress, StorageGrowError, growFailureDetails } from '../../src/storage/grow-error.js';
import { FakeBackend, FakeClock, GiB } from '../support/fake-backend.js';
import { fakeContainer, FakeInventory } from '../support/fake-inventory.js';
import { tempDir } from '../support/temp-dir.js';
import { parseExposition } from './metrics-exposition.js';

function setup(driver: 'btrfs' | 'devicemapper' = 'btrfs') {
  const directory = tempDir('grow-failure');
  const clock = new FakeClock();
  const backend = new FakeBackend(clock, { driver, pool: null });
  const inventory = new FakeInventory();
  const journal = new Journal({
    path: path.join(directory, 'journal.jsonl'),
    maxSizeBytes: 1 << 20,
    keep: 1,
  });
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const metrics = createMetrics({ processMetrics: false });
  const reconciler = new Reconciler({
    inventory,
    backend,
    config: parseConfigObject({}, 'test'),
    journal,
    clock,
    logger,
    onReport: (report) => metrics.applyPassReport(report),
  });
  const container = fakeContainer({ storageDriver: driver });
  inventory.put(container);
  backend.addContainer(container.id, { sizeBytes: 10 * GiB, usedBytes: 9.5 * GiB });
  const failuresByStep = async () =>
    parseExposition(await metrics.registry.metrics())
      .filter((sample) => sample.name === 'docker_autogrow_grow_failures_total')
      .map((sample) => [sample.labels.driver, sample.labels.step, sample.value]);
  return { backend, journal, reconciler, container, lines, failuresByStep };
}

describe('grow failure details', () => {
  it('a devicemapper step failure reaches the journal, the report, the log and the metric', async () => {
    const h = setup('devicemapper');
    h.backend.failNextGrows(
      h.container.id,
      1,
      new DevicemapperGrowError(
        'dm-1: dmsetup resume did not make the new table live',
        'dmsetup resume',
        'restored',
      ),
    );
    const report = await h.reconciler.runPass();
    expect(report.containers[0]?.outcome).toMatchObject({
      kind: 'failed',
      error: 'dm-1: dmsetup resume did not make the new table live',
      step: 'dmsetup resume',
      deviceState: 'restored',
    });
    const failed = h.journal.replay().records.filter((record) => record.type === 'grow-failed');
    expect(failed).toMatchObject([
      { containerId: h.container.id, step: 'dmsetup resume', deviceState: 'restored' },
    ]);
    expect(h.lines.find((line) => line.msg === 'grow failed')).toMatchObject({
      step: 'dmsetup resume',
      deviceState: 'restored',
    });
    expect(await h.failuresByStep()).toEqual([['devicemapper', 'dmsetup resume', 1]]);
  });

  it('a plain error counts under step unknown; a grow that did not move the size under read back', async () => {
    const h = setup();
    h.backend.failNextGrows(h.container.id, 1, 'something broke');
    await h.reconciler.runPass();
    expect(await h.failuresByStep()).toEqual([['btrfs', 'unknown', 1]]);
    const failed = h.journal.replay().records.filter((record) => record.type === 'grow-failed');
    expect(failed).toMatchObject([{ step: 'unknown', deviceState: 'unknown', error: 'something broke' }]);
  });

  it('GrowProgress names the step a plain error escaped from and keeps its message and cause', () => {
    const progress = new GrowProgress();
    const early = progress.failed(new Error('no such container'));
    expect(growFailureDetails(early)).toEqual({ step: 'prepare', deviceState: 'unchanged' });
    progress.at('write quota file', 'limit-set-file-pending');
    const cause = new Error('EROFS');
    const late = progress.failed(cause);
    expect(late).toBeInstanceOf(StorageGrowError);
    expect(late.message).toBe('EROFS');
    expect(late.cause).toBe(cause);
    expect(growFailureDetails(late)).toEqual({
      step: 'write quota file',
      deviceState: 'limit-set-file-pending',
    });
    // an error that already names its step is passed through as it is
    const named = new DevicemapperGrowError('load failed', 'dmsetup load', 'unchanged');
    expect(progress.failed(named)).toBe(named);
  });
});
