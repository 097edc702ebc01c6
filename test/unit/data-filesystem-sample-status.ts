/**
 * A data-filesystem watcher status with every field set (an ext4 data root on an LV whose VG is
 * exhausted), for the metrics tests: a scrape after it shows every data-filesystem series.
 */
import type { DataFsStatus } from '../../src/storage/data-filesystem/watcher.js';

export function sampleDataFsStatus(): DataFsStatus {
  const GIB = 1024 ** 3;
  return {
    atMs: 1_700_000_000_000,
    dataRoot: '/var/lib/docker',
    dryRun: false,
    look: {
      atMs: 1_700_000_000_000,
      stack: {
        dataRoot: '/var/lib/docker',
        mountPoint: '/var/lib/docker',
        fsType: 'ext4',
        source: '/dev/mapper/agdata-docker',
        readOnly: false,
        deviceMajorMinor: '253:0',
        deviceSizeBytes: 3 * GIB,
        dmName: 'agdata-docker',
        lvm: { vg: 'agdata', lv: 'docker' },
        notLvmReason: null,
      },
      usage: {
        typeMagic: 0xef53,
        totalBytes: 3 * GIB - 100 * 1024 ** 2,
        availableBytes: 0.3 * GIB,
        usedBytes: 2.6 * GIB,
        totalInodes: 196608,
        freeInodes: 196000,
      },
      lv: {
        vg: 'agdata',
        lv: 'docker',
        lvUuid: 'Xe4pc8-qCDs-kyOY-5zDL-F0mz-hdcm-zlA00c',
        attr: '-wi-ao----',
        sizeBytes: 3 * GIB,
        segtype: 'linear',
        kernelMajorMinor: '253:0',
        vgSizeBytes: 8 * GIB,
        vgFreeBytes: 0,
        vgExtentBytes: 4 * 1024 ** 2,
      },
      lvReadAtMs: 1_700_000_000_000,
      lvError: null,
      observation: {
        fsType: 'ext4',
        fsTotalBytes: 3 * GIB - 100 * 1024 ** 2,
        fsAvailableBytes: 0.3 * GIB,
        fsTotalInodes: 196608,
        fsFreeInodes: 196000,
        readOnly: false,
        lvm: { lvSizeBytes: 3 * GIB, segtype: 'linear', vgFreeBytes: 0, vgExtentBytes: 4 * 1024 ** 2 },
      },
    },
    decision: {
      action: 'cannot-grow',
      reason: 'vg-exhausted',
      why: 'bytes 90% used >= 85%, but the volume group has 0B free and 1GiB is reserved',
    },
    outcome: {
      kind: 'grown',
      atMs: 1_700_000_000_000,
      fromLvBytes: 2 * GIB,
      toLvBytes: 3 * GIB,
      fsAfterBytes: 3 * GIB,
    },
    pendingRecoveries: [],
    error: null,
    growsTotal: 1,
    growFailuresTotal: 0,
    // the disk under the VG's PV grew by 2 GiB: the watcher resized the PV this look
    underneath: {
      observation: {
        mountPoint: '/var/lib/docker',
        fsType: 'ext4',
        readOnly: false,
        device: null,
        pvs: [
          {
            pvName: '/dev/vdb',
            devSizeBytes: 10 * GIB,
            pvSizeBytes: 8 * GIB - 4 * 1024 ** 2,
            peStartBytes: 1024 ** 2,
            partitionRoom: null,
          },
        ],
        vgExtentBytes: 4 * 1024 ** 2,
      },
      decision: {
        action: 'pvresize',
        pvName: '/dev/vdb',
        fromBytes: 8 * GIB - 4 * 1024 ** 2,
        toBytes: 10 * GIB - 1024 ** 2,
        why: 'PV /dev/vdb is 8GiB on a 10GiB device: it grew underneath, pvresize gives the VG the difference',
        unusedBytes: 2 * GIB + 3 * 1024 ** 2,
      },
      outcome: {
        kind: 'grown',
        action: 'pvresize',
        fromBytes: 8 * GIB - 4 * 1024 ** 2,
        toBytes: 10 * GIB - 4 * 1024 ** 2,
      },
      probeError: null,
      pendingRecoveries: [],
      growsTotal: { 'pvresize/grown': 1 },
    },
  };
}
