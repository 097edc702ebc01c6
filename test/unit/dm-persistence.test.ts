/**
 * Grows that dockerd does not cache yet: the pure rules (src/policy/persistence.ts and
 * src/storage/devicemapper/persistence.ts) and how they show in `status` and the metrics.
 */
import { describe, expect, it } from 'vitest';
import { renderStatus, statusJson } from '../../src/cli/render-status.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import {
  manualGrowPersistenceRefusal,
  growPersistenceProblem,
  pendingPersistenceAdvice,
} from '../../src/policy/persistence.js';
import {
  devicePersistence,
  growPersistenceFacts,
  holdDeviceName,
  holdTable,
  kernelHolds,
  parseDmsetupAllDevices,
} from '../../src/storage/devicemapper/index.js';
import type { PassReport } from '../../src/report/pass-report.js';
import { parseExposition } from './metrics-exposition.js';
import { sampleThinPoolReport } from './metrics-sample-report.js';
import { REFERENCE_LVM_DRIVER_STATUS } from '../support/dm-lines.js';

const HASH = '83cf663f6a72c24c6e6a005fd35d6a5448236a2a76ca69d512cbe51fc53591b5';
const GIB = 1024 ** 3;

describe('kernel holds', () => {
  it('are named by the container hash, map 4 KiB past the superblock, and are found in `dmsetup table`', () => {
    expect(holdDeviceName(HASH)).toBe(`autogrow-hold-${HASH}`);
    expect(holdTable('253:3')).toBe('0 8 linear 253:3 8');
    const tables = parseDmsetupAllDevices(
      [
        `docker-254:0-15931-${HASH}: 0 4194304 thin 253:2 4`,
        `autogrow-hold-${HASH}: 0 8 linear 253:3 8`,
        // not a hold: another target, or a name that is not a hash
        `autogrow-hold-${'b'.repeat(64)}: 0 8 zero`,
        'autogrow-hold-x: 0 8 linear 253:3 8',
        'docker-thinpool: 0 8380416 thin-pool 253:0 253:1 1024 0 1 skip_block_zeroing ',
      ].join('\n'),
    );
    expect([...kernelHolds(tables).values()]).toEqual([
      { name: `autogrow-hold-${HASH}`, hash: HASH, heldMajorMinor: '253:3' },
    ]);
  });

  it('a grow is persistent once dockerd caches the grown size, else held or unheld', () => {
    expect(devicePersistence({ grownBytes: 2 * GIB, dockerSizeBytes: 2 * GIB, held: true })).toBe(
      'persistent',
    );
    expect(devicePersistence({ grownBytes: 2 * GIB, dockerSizeBytes: GIB, held: true })).toBe('held');
    expect(devicePersistence({ grownBytes: 2 * GIB, dockerSizeBytes: null, held: false })).toBe('unheld');
  });
});

describe('manual grow refusal', () => {
  const dmFacts = (removal: boolean | null, deletion: boolean | null) => ({
    driver: 'devicemapper',
    deferredRemovalEnabled: removal,
    deferredDeletionEnabled: deletion,
  });

  it('refuses a devicemapper grow without deferred removal or deletion unless --force, with the reason and the fix', () => {
    const refusal = manualGrowPersistenceRefusal(dmFacts(false, true), false);
    expect(refusal).toMatch(/^not growing: .*without deferred removal, so no kernel hold/);
    expect(refusal).toMatch(/last sector read failed/);
    expect(refusal).toMatch(/dm\.use_deferred_removal=true/);
    expect(refusal).toMatch(/--force grows anyway/);
    expect(manualGrowPersistenceRefusal(dmFacts(false, true), true)).toBeNull();
    expect(growPersistenceProblem(dmFacts(null, null))).toMatch(
      /without deferred removal and deferred deletion/,
    );
  });

  it('lets every grow through that can be held, and every other driver', () => {
    expect(manualGrowPersistenceRefusal(dmFacts(true, true), false)).toBeNull();
    expect(
      manualGrowPersistenceRefusal(
        { driver: 'btrfs', deferredRemovalEnabled: null, deferredDeletionEnabled: null },
        false,
      ),
    ).toBeNull();
  });

  it('reads the facts from docker info', () => {
    expect(
      growPersistenceFacts({ driver: 'devicemapper', driverStatus: REFERENCE_LVM_DRIVER_STATUS }),
    ).toEqual(dmFacts(true, true));
    expect(growPersistenceFacts({ driver: 'devicemapper', driverStatus: [['Pool Name', 'p']] })).toEqual(
      dmFacts(null, null),
    );
    expect(growPersistenceFacts({ driver: 'overlay2', driverStatus: [] }).driver).toBe('overlay2');
  });
});

/** The thin-pool sample report with its container's grow held, and a second one unheld. */
function reportWithPendingGrows(): PassReport {
  const base = sampleThinPoolReport(Date.UTC(2026, 11, 3));
  const held = base.containers[0]!;
  const unheld = {
    ...held,
    containerId: 'f'.repeat(64),
    name: 'pg-2',
    usage: { ...held.usage!, containerId: 'f'.repeat(64), detail: { persistence: 'unheld' } },
  };
  return {
    ...base,
    containers: [{ ...held, usage: { ...held.usage!, detail: { persistence: 'held' } } }, unheld],
  };
}

describe('visibility', () => {
  it('status marks each device that is not persistent and says what makes it permanent', () => {
    const text = renderStatus(reportWithPendingGrows(), { nowMs: Date.UTC(2026, 11, 3) });
    expect(text).toMatch(/pg-1 .*NOT PERSISTENT \(held\)/);
    expect(text).toMatch(/pg-2 .*NOT PERSISTENT \(unheld\)/);
    expect(text).toContain(`warning: pg-1: not persistent (held): ${pendingPersistenceAdvice('held')}`);
    expect(text).toContain(`warning: pg-2: not persistent (unheld): ${pendingPersistenceAdvice('unheld')}`);
    const json = JSON.parse(statusJson(reportWithPendingGrows(), { nowMs: 0 })) as {
      containers: Array<{ name: string; persistence: string | null }>;
    };
    expect(json.containers.map((c) => [c.name, c.persistence])).toEqual([
      ['pg-1', 'held'],
      ['pg-2', 'unheld'],
    ]);
    expect(renderStatus(sampleThinPoolReport(), { nowMs: 0 })).not.toMatch(/PERSISTENT/);
  });

  it('the metric counts held and unheld devices on devicemapper hosts, and has no series elsewhere', async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.applyPassReport(reportWithPendingGrows());
    const samples = parseExposition(await metrics.registry.metrics()).filter(
      (sample) => sample.name === 'docker_autogrow_devicemapper_unpersisted_devices',
    );
    expect(samples.map((sample) => [sample.labels['state'], sample.value])).toEqual([
      ['held', 1],
      ['unheld', 1],
    ]);
    metrics.applyPassReport(sampleThinPoolReport());
    const after = parseExposition(await metrics.registry.metrics()).filter(
      (sample) => sample.name === 'docker_autogrow_devicemapper_unpersisted_devices',
    );
    expect(after.map((sample) => sample.value)).toEqual([0, 0]);
    const btrfsOnly = createMetrics({ processMetrics: false });
    btrfsOnly.applyPassReport({ ...sampleThinPoolReport(), driver: 'btrfs', containers: [] });
    expect(await btrfsOnly.registry.metrics()).not.toMatch(
      /^docker_autogrow_devicemapper_unpersisted_devices/m,
    );
  });
});
