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
