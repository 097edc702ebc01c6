/**
 * The pure data-filesystem policy: thresholds on bytes and inodes, step / minStep / maxSize, the VG
 * reserve, extent rounding, cooldown, and one reason code for every case where it cannot grow.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decideDataFilesystem,
  type DataFilesystemObservation,
  type DataFilesystemSettings,
} from '../../src/policy/data-filesystem.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const EXTENT = 4 * MIB;

const settings: DataFilesystemSettings = {
  threshold: 0.85,
  inodeThreshold: 0.9,
  step: { kind: 'ratio', ratio: 0.2 },
  minStep: GIB,
  maxSize: 100 * GIB,
  vgReserve: GIB,
  cooldown: 30_000,
};

function observed(
  overrides: Partial<DataFilesystemObservation> = {},
  usedRatio = 0.9,
): DataFilesystemObservation {
  const total = 10 * GIB - 64 * MIB; // ext4 overhead below the LV size
  return {
    fsType: 'ext4',
    fsTotalBytes: total,
    fsAvailableBytes: Math.round(total * (1 - usedRatio)),
    fsTotalInodes: 655360,
    fsFreeInodes: 600000,
    readOnly: false,
    lvm: { lvSizeBytes: 10 * GIB, segtype: 'linear', vgFreeBytes: 50 * GIB, vgExtentBytes: EXTENT },
    ...overrides,
  };
}

const fresh = { lastGrowAtMs: null, pendingRecovery: false };

describe('decideDataFilesystem', () => {
  it('does nothing below both thresholds', () => {
    expect(decideDataFilesystem(settings, observed({}, 0.5), fresh, 0)).toMatchObject({ action: 'none' });
  });

  it('grows by the step (20% of the LV, at least minStep), in whole extents', () => {
    const decision = decideDataFilesystem(settings, observed(), fresh, 0);
    expect(decision).toMatchObject({ action: 'grow', fromBytes: 10 * GIB, toBytes: 12 * GIB });
    const small = decideDataFilesystem(
      settings,
      observed({
        lvm: {
          lvSizeBytes: 2 * GIB + EXTENT,
          segtype: 'linear',
          vgFreeBytes: 50 * GIB,
          vgExtentBytes: EXTENT,
        },
        fsTotalBytes: 2 * GIB,
        fsAvailableBytes: 0.1 * GIB,
      }),
      fresh,
      0,
    );
    // 20% of 2 GiB is below minStep: 1 GiB
    expect(small).toMatchObject({ action: 'grow', toBytes: 3 * GIB + EXTENT });
  });

  it('grows on inodes alone (ext4 runs out of inodes first)', () => {
    const decision = decideDataFilesystem(settings, observed({ fsFreeInodes: 1000 }, 0.3), fresh, 0);
    expect(decision).toMatchObject({ action: 'grow' });
    expect(decision.why).toContain('inodes');
  });

  it('btrfs (no inode count) is judged on bytes only', () => {
    expect(
      decideDataFilesystem(
        settings,
        observed({ fsType: 'btrfs', fsTotalInodes: 0, fsFreeInodes: 0 }, 0.3),
        fresh,
        0,
      ),
    ).toMatchObject({ action: 'none' });
  });

  it('covers what brings usage back under the threshold when the step is too small', () => {
    const nearlyFull = observed({}, 0.999);
    const decision = decideDataFilesystem(
      { ...settings, step: { kind: 'bytes', bytes: EXTENT }, minStep: 0 },
      nearlyFull,
      fresh,
      0,
    );
    if (decision.action !== 'grow') throw new Error(decision.action);
    const used = nearlyFull.fsTotalBytes - nearlyFull.fsAvailableBytes;
    expect(used / (decision.toBytes - 64 * MIB)).toBeLessThanOrEqual(settings.threshold);
  });

  it('is limited by the VG above its reserve, then says vg-exhausted', () => {
    const lvm = { lvSizeBytes: 10 * GIB, segtype: 'linear', vgExtentBytes: EXTENT };
    expect(
      decideDataFilesystem(settings, observed({ lvm: { ...lvm, vgFreeBytes: 1.5 * GIB } }), fresh, 0),
    ).toMatchObject({
      action: 'grow',
      toBytes: 10 * GIB + 512 * MIB,
    });
    const exhausted = decideDataFilesystem(
      settings,
      observed({ lvm: { ...lvm, vgFreeBytes: GIB + EXTENT - 1 } }),
      fresh,
      0,
    );
    expect(exhausted).toMatchObject({ action: 'cannot-grow', reason: 'vg-exhausted' });
    expect(exhausted.why).toMatch(/the volume group has \S+ free and 1GiB is reserved/);
  });

  it('never passes maxSize, then says max-size-reached', () => {
    expect(decideDataFilesystem({ ...settings, maxSize: 11 * GIB }, observed(), fresh, 0)).toMatchObject({
      action: 'grow',
      toBytes: 11 * GIB,
    });
    expect(decideDataFilesystem({ ...settings, maxSize: 10 * GIB }, observed(), fresh, 0)).toMatchObject({
      action: 'cannot-grow',
      reason: 'max-size-reached',
    });
  });

  it('names why it cannot grow: not on LVM, filesystem, LV type, read-only, recovery pending', () => {
    const cases: Array<[Partial<DataFilesystemObservation>, string]> = [
      [{ lvm: null, notLvmReason: '/dev/vda1 is a partition' }, 'not-lvm'],
      [{ fsType: 'zfs' }, 'unsupported-filesystem'],
      [
        { lvm: { lvSizeBytes: 10 * GIB, segtype: 'thin', vgFreeBytes: 50 * GIB, vgExtentBytes: EXTENT } },
        'unsupported-lv-type',
      ],
      [{ readOnly: true }, 'read-only'],
    ];
    for (const [overrides, reason] of cases) {
      expect(decideDataFilesystem(settings, observed(overrides), fresh, 0)).toMatchObject({
        action: 'cannot-grow',
        reason,
      });
    }
    expect(
      decideDataFilesystem(
        settings,
        observed({ lvm: null, notLvmReason: '/dev/vda1 is a partition' }),
        fresh,
        0,
      ).why,
    ).toContain('/dev/vda1 is a partition');
    expect(
      decideDataFilesystem(settings, observed(), { lastGrowAtMs: null, pendingRecovery: true }, 0),
    ).toMatchObject({
      action: 'cannot-grow',
      reason: 'recovery-pending',
    });
  });

  it('waits out the cooldown after a grow', () => {
    const history = { lastGrowAtMs: 1_000_000, pendingRecovery: false };
    expect(decideDataFilesystem(settings, observed(), history, 1_010_000)).toMatchObject({
      action: 'cooldown',
      untilMs: 1_030_000,
    });
    expect(decideDataFilesystem(settings, observed(), history, 1_030_000)).toMatchObject({ action: 'grow' });
  });

  it('never shrinks, never passes maxSize, never spends the VG reserve, always whole extents', () => {
    fc.assert(
      fc.property(
        fc.record({
          lvExtents: fc.integer({ min: 1, max: 100_000 }),
          vgFreeExtents: fc.integer({ min: 0, max: 100_000 }),
          usedRatio: fc.double({ min: 0, max: 1, noNaN: true }),
          maxSizeBytes: fc.integer({ min: 0, max: 2 ** 42 }),
          reserveBytes: fc.integer({ min: 0, max: 2 ** 36 }),
          stepRatio: fc.double({ min: 0.01, max: 2, noNaN: true }),
          minStepBytes: fc.integer({ min: 0, max: 2 ** 36 }),
        }),
        (input) => {
          const lvSizeBytes = input.lvExtents * EXTENT;
          const vgFreeBytes = input.vgFreeExtents * EXTENT;
          const decision = decideDataFilesystem(
            {
              ...settings,
              maxSize: input.maxSizeBytes,
              vgReserve: input.reserveBytes,
              step: { kind: 'ratio', ratio: input.stepRatio },
              minStep: input.minStepBytes,
            },
            observed(
              {
                fsTotalBytes: lvSizeBytes,
                fsAvailableBytes: Math.round(lvSizeBytes * (1 - input.usedRatio)),
                lvm: { lvSizeBytes, segtype: 'linear', vgFreeBytes, vgExtentBytes: EXTENT },
              },
              input.usedRatio,
            ),
            fresh,
            0,
          );
          if (decision.action !== 'grow') return;
          expect(decision.toBytes).toBeGreaterThan(lvSizeBytes);
          expect(decision.toBytes).toBeLessThanOrEqual(input.maxSizeBytes);
          expect(decision.toBytes - lvSizeBytes).toBeLessThanOrEqual(vgFreeBytes - input.reserveBytes);
          expect(decision.toBytes % EXTENT).toBe(0);
        },
      ),
    );
  });
});
