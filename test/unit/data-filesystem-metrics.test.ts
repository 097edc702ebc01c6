/**
 * The data-filesystem metrics as a scrape shows them: sizes as statfs and lvs reported them, one
 * cannot-grow reason at 1, grow results counted, and no stale LV series once the LV is not seen.
 */
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics/metrics.js';
import { sampleDataFsStatus } from './data-filesystem-sample-status.js';
import { parseExposition } from './metrics-exposition.js';

async function samples(metrics: ReturnType<typeof createMetrics>) {
  return parseExposition(await metrics.registry.metrics()).filter((sample) =>
    sample.name.startsWith('docker_autogrow_data_filesystem_'),
  );
}

describe('data-filesystem metrics', () => {
  it('start with every reason at 0 and every result at 0', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const all = await samples(metrics);
    const cannot = all.filter((sample) => sample.name === 'docker_autogrow_data_filesystem_cannot_grow');
    expect(cannot.map((sample) => sample.labels.reason).sort()).toEqual([
      'max-size-reached',
      'not-lvm',
      'read-only',
      'recovery-pending',
      'unsupported-filesystem',
      'unsupported-lv-type',
      'vg-exhausted',
    ]);
    expect(cannot.every((sample) => sample.value === 0)).toBe(true);
    expect(
      all.filter((sample) => sample.name === 'docker_autogrow_data_filesystem_grows_total'),
    ).toHaveLength(3);
  });

  it('a device grown underneath: unused bytes, grows by kind and result (counted once), needs-operator', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const status = sampleDataFsStatus();
    const value = async (name: string, labels: Record<string, string> = {}) =>
      (await samples(metrics)).find(
        (sample) =>
          sample.name === `docker_autogrow_data_filesystem_${name}` &&
          Object.entries(labels).every(([key, expected]) => sample.labels[key] === expected),
      )?.value;
    expect(await value('device_grows_total', { kind: 'pvresize', result: 'grown' })).toBe(0);
    metrics.dataFilesystem.applyStatus(status);
    // the watcher's totals are since its start: a second look with the same totals adds nothing
    metrics.dataFilesystem.applyStatus(status);
    expect(await value('device_grows_total', { kind: 'pvresize', result: 'grown' })).toBe(1);
    expect(await value('device_grows_total', { kind: 'grow-filesystem', result: 'grown' })).toBe(0);
    expect(await value('device_unused_bytes')).toBe(2 * 1024 ** 3 + 3 * 1024 ** 2);
    expect(await value('device_needs_operator')).toBe(0);
    metrics.dataFilesystem.applyStatus({
      ...status,
      underneath: {
        ...status.underneath!,
        decision: { action: 'manual', why: 'partition', fix: 'growpart /dev/vda 3', unusedBytes: 5 },
        growsTotal: { 'pvresize/grown': 1, 'pvresize/failed': 2 },
      },
    });
    expect(await value('device_needs_operator')).toBe(1);
    expect(await value('device_unused_bytes')).toBe(5);
    expect(await value('device_grows_total', { kind: 'pvresize', result: 'failed' })).toBe(2);
  });

  it('copy a look: statfs, lvs, the reason, the outcome', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const status = sampleDataFsStatus();
    metrics.dataFilesystem.applyStatus(status);
    const all = await samples(metrics);
    const value = (name: string, labels: Record<string, string> = {}) =>
      all.find(
        (sample) =>
          sample.name === `docker_autogrow_data_filesystem_${name}` &&
          Object.entries(labels).every(([key, expected]) => sample.labels[key] === expected),
      )?.value;
    const fs = { mountpoint: '/var/lib/docker', fstype: 'ext4' };
    expect(value('size_bytes', fs)).toBe(status.look?.usage.totalBytes);
    expect(value('free_bytes', fs)).toBe(status.look?.usage.availableBytes);
    expect(value('inodes_free', fs)).toBe(196000);
    expect(value('lv_size_bytes', { vg: 'agdata', lv: 'docker' })).toBe(3 * 1024 ** 3);
    expect(value('vg_free_bytes', { vg: 'agdata' })).toBe(0);
    expect(value('cannot_grow', { reason: 'vg-exhausted' })).toBe(1);
    expect(value('cannot_grow', { reason: 'not-lvm' })).toBe(0);
    expect(value('grows_total', { result: 'grown' })).toBe(1);

    // lvs failed in the next look: the LV series go, the filesystem ones stay
    const look = status.look!;
    metrics.dataFilesystem.applyStatus({
      ...status,
      outcome: null,
      decision: null,
      look: { ...look, lv: null },
    });
    const after = await samples(metrics);
    expect(after.some((sample) => sample.name === 'docker_autogrow_data_filesystem_lv_size_bytes')).toBe(
      false,
    );
    expect(after.some((sample) => sample.name === 'docker_autogrow_data_filesystem_vg_free_bytes')).toBe(
      false,
    );
    expect(after.some((sample) => sample.name === 'docker_autogrow_data_filesystem_size_bytes')).toBe(true);
    expect(
      after.find(
        (sample) => sample.name === 'docker_autogrow_data_filesystem_cannot_grow' && sample.value === 1,
      ),
    ).toBeUndefined();
  });
});
