/**
 * Grows that dockerd does not cache yet: the pure rules (src/policy/persistence.ts and
 * src/storage/devicemapper/persistence.ts) and how they show in `status` and the metrics.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/agent/journal.js';
import { Reconciler } from '../../src/agent/reconciler.js';
import { parseConfigObject } from '../../src/config/load.js';
import type { StorageBackend } from '../../src/storage/types.js';
import { FakeBackend, FakeClock } from '../support/fake-backend.js';
import { fakeContainer, FakeInventory } from '../support/fake-inventory.js';
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
  holdLosetupArgs,
  kernelHolds,
  parseDmInfoColumns,
  type LoopFacts,
} from '../../src/storage/devicemapper/index.js';
import type { PassReport } from '../../src/report/pass-report.js';
import { parseExposition } from './metrics-exposition.js';
import { sampleThinPoolReport } from './metrics-sample-report.js';
import { REFERENCE_LVM_DRIVER_STATUS } from '../support/dm-lines.js';

const HASH = '83cf663f6a72c24c6e6a005fd35d6a5448236a2a76ca69d512cbe51fc53591b5';
const GIB = 1024 ** 3;

describe('kernel holds', () => {
  it('are read-only 4 KiB loop devices past the superblock, found in /sys/block by what they hold', () => {
    expect(holdLosetupArgs(`docker-254:0-15931-${HASH}`)).toEqual([
      '--read-only',
      '--offset',
      '4096',
      '--sizelimit',
      '4096',
      '--find',
      '--show',
      `/dev/mapper/docker-254:0-15931-${HASH}`,
    ]);
    const infos = parseDmInfoColumns(
      [
        'docker-thinpool;253;2;L--w;2;LVM-x-tpool',
        `docker-254:0-15931-${HASH};253;3;L--w;2;`,
        `docker-254:0-15931-${'c'.repeat(64)}-init;253;4;L--w;1;`,
      ].join('\n'),
    );
    const hold = { readOnly: true, offsetBytes: 4096, sizeLimitBytes: 4096 };
    const loops: LoopFacts[] = [
      { name: 'loop9', backingFile: '/dev/dm-3', backingMajorMinor: '253:3', ...hold },
      // not holds: writable, another offset or size, a file, the pool, an -init device
      { name: 'loop1', backingFile: '/dev/dm-3', backingMajorMinor: '253:3', ...hold, readOnly: false },
      { name: 'loop2', backingFile: '/dev/dm-3', backingMajorMinor: '253:3', ...hold, offsetBytes: 0 },
      { name: 'loop3', backingFile: '/dev/dm-3', backingMajorMinor: '253:3', ...hold, sizeLimitBytes: 0 },
      {
        name: 'loop4',
        backingFile: '/var/lib/docker/devicemapper/devicemapper/data',
        backingMajorMinor: null,
        ...hold,
      },
      { name: 'loop5', backingFile: '/dev/dm-2', backingMajorMinor: '253:2', ...hold },
      { name: 'loop6', backingFile: '/dev/dm-4', backingMajorMinor: '253:4', ...hold },
    ];
    expect([...kernelHolds({ loops, infos }).values()]).toEqual([
      { name: 'loop9', devicePath: '/dev/loop9', hash: HASH, heldMajorMinor: '253:3' },
    ]);
    // a backing path still named /dev/mapper/<name> (no udev symlinks) is found by name
    expect([
      ...kernelHolds({
        loops: [
          {
            name: 'loop7',
            backingFile: `/dev/mapper/docker-254:0-15931-${HASH}`,
            backingMajorMinor: null,
            ...hold,
          },
        ],
        infos,
      }).keys(),
    ]).toEqual([HASH]);
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

describe('stopped containers pending persistence (no row of their own)', () => {
  const STOPPED_ID = 'a'.repeat(64);
  /** pg-1 runs held; pg-3 was grown, then stopped while its grow was pending: only in `unpersisted`. */
  function reportWithStoppedPending(): PassReport {
    const base = reportWithPendingGrows();
    const held = base.containers[0]!;
    return {
      ...base,
      containers: [held],
      unpersisted: [
        {
          containerId: held.containerId,
          name: held.name,
          deviceName: 'docker-254:0-1-held',
          state: 'held',
          running: true,
          grownBytes: 2 * GIB,
          dockerSizeBytes: GIB,
        },
        {
          containerId: STOPPED_ID,
          name: 'pg-3',
          deviceName: 'docker-254:0-1-stopped',
          state: 'held',
          running: false,
          grownBytes: 3 * GIB,
          dockerSizeBytes: GIB,
        },
      ],
    };
  }

  it('status names the stopped one with the fix, once per device', () => {
    const text = renderStatus(reportWithStoppedPending(), { nowMs: Date.UTC(2026, 11, 3) });
    expect(text).toContain(
      `warning: pg-3: not persistent (held, stopped): ${pendingPersistenceAdvice('held')}`,
    );
    // the running one keeps its row's warning and is not repeated
    expect(text.match(/pg-1: not persistent/g)).toHaveLength(1);
    const json = JSON.parse(statusJson(reportWithStoppedPending(), { nowMs: 0 })) as {
      unpersisted: Array<{ name: string; state: string; running: boolean }>;
    };
    expect(json.unpersisted.map((d) => [d.name, d.state, d.running])).toEqual([
      ['pg-1', 'held', true],
      ['pg-3', 'held', false],
    ]);
  });

  it('the metric counts the stopped one too', async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.applyPassReport(reportWithStoppedPending());
    const samples = parseExposition(await metrics.registry.metrics()).filter(
      (sample) => sample.name === 'docker_autogrow_devicemapper_unpersisted_devices',
    );
    expect(samples.map((sample) => [sample.labels['state'], sample.value])).toEqual([
      ['held', 2],
      ['unheld', 0],
    ]);
  });

  it("the reconciler puts the backend's list into the pass report, named from the inventory", async () => {
    const clock = new FakeClock();
    const fake = new FakeBackend(clock, { driver: 'devicemapper' });
    const inventory = new FakeInventory();
    const stopped = fakeContainer({
      id: STOPPED_ID,
      name: 'pg-3',
      running: false,
      state: 'exited',
      storageDriver: 'devicemapper',
    });
    inventory.put(stopped);
    const unknownId = 'b'.repeat(64);
    const backend: StorageBackend = {
      driver: 'devicemapper',
      grow: (request) => fake.grow(request),
      doctor: () => fake.doctor(),
      observe: async (containers, nowMs) => ({
        ...(await fake.observe(containers, nowMs)),
        unpersisted: [
          {
            containerId: STOPPED_ID,
            deviceName: 'd1',
            state: 'unheld',
            running: false,
            grownBytes: GIB,
            dockerSizeBytes: null,
          },
          {
            containerId: unknownId,
            deviceName: 'd2',
            state: 'held',
            running: false,
            grownBytes: GIB,
            dockerSizeBytes: null,
          },
        ],
      }),
    };
    const directory = mkdtempSync(path.join(tmpdir(), 'autogrow-dm-unpersisted-'));
    try {
      const reconciler = new Reconciler({
        inventory,
        backend,
        config: parseConfigObject({}, 'test'),
        journal: new Journal({ path: path.join(directory, 'journal.jsonl'), maxSizeBytes: 1 << 20, keep: 1 }),
        clock,
        logger: pino({ level: 'silent' }),
      });
      const report = await reconciler.runPass();
      expect(report.containers).toEqual([]); // stopped: no row
      expect(report.unpersisted?.map((d) => [d.name, d.state, d.running])).toEqual([
        ['pg-3', 'unheld', false],
        [unknownId.slice(0, 12), 'held', false],
      ]);
      expect(renderStatus(report, { nowMs: 0 })).toContain('warning: pg-3: not persistent (unheld, stopped)');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
