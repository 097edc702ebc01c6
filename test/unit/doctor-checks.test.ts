import { describe, expect, it } from 'vitest';
import {
  binaryChecks,
  compareApiVersions,
  driverChecks,
  genericChecks,
  hostServable,
  type HostFacts,
} from '../../src/doctor/checks.js';
import { doctorJson, mergeChecks, probeListen, renderChecklist } from '../../src/doctor/run-doctor.js';
import type { DockerInfo } from '../../src/docker/model.js';
import type { MountEntry } from '../../src/storage/filesystem.js';
import { createServer } from 'node:net';

function info(overrides: Partial<DockerInfo> = {}): DockerInfo {
  return {
    serverVersion: '20.10.24+dfsg1',
    apiVersion: '1.41',
    driver: 'btrfs',
    driverStatus: [],
    dockerRootDir: '/var/lib/docker',
    liveRestoreEnabled: true,
    containersRunning: 3,
    ...overrides,
  };
}

function mount(fsType: string, superOptions: string[]): MountEntry {
  return {
    mountId: 30,
    parentId: 1,
    majorMinor: '8:1',
    root: '/',
    mountPoint: '/var/lib/docker',
    mountOptions: ['rw', 'relatime'],
    fsType,
    source: '/dev/sdb1',
    superOptions,
  };
}

function facts(overrides: Partial<HostFacts> = {}): HostFacts {
  return {
    docker: { reachable: true, socketPath: '/var/run/docker.sock', info: info() },
    binaries: [{ tool: 'btrfs', resolvedPath: '/usr/bin/btrfs' }],
    dataRootMount: mount('btrfs', ['space_cache=v2']),
    privileges: {
      uid: 0,
      capSysAdmin: true,
      socket: { path: '/var/run/docker.sock', exists: true, readWrite: true },
      stateDir: { path: '/var/lib/docker-autogrow', writable: true, detail: 'writable' },
    },
    metricsPort: { enabled: true, listen: '0.0.0.0:9839', free: true },
    ...overrides,
  };
}

describe('generic doctor checks', () => {
  it('passes a healthy btrfs host', () => {
    const checks = genericChecks(facts());
    expect(checks.filter((check) => !check.ok)).toEqual([]);
    expect(hostServable(checks)).toBe(true);
  });

  it('fails an unsupported driver with a fix', () => {
    const [check] = driverChecks(info({ driver: 'vfs' }), null);
    expect(check).toMatchObject({ name: 'storage driver supported', ok: false, severity: 'error' });
    expect(check?.fix).toMatch(/overlay2/);
  });

  it('accepts overlay2 only on XFS with project quotas', () => {
    const overlay = info({ driver: 'overlay2', driverStatus: [['Backing Filesystem', 'xfs']] });
    expect(driverChecks(overlay, mount('xfs', ['attr2', 'inode64', 'prjquota'])).every((c) => c.ok)).toBe(
      true,
    );
    const noQuota = driverChecks(overlay, mount('xfs', ['attr2', 'inode64', 'noquota']));
    expect(noQuota.find((c) => c.name === 'XFS mounted with pquota')).toMatchObject({
      ok: false,
      severity: 'error',
    });
    expect(noQuota.find((c) => c.name === 'XFS mounted with pquota')?.fix).toMatch(/-o pquota/);
    const onExt4 = driverChecks(overlay, mount('ext4', []));
    expect(onExt4.find((c) => c.name === 'overlay2 on XFS')).toMatchObject({ ok: false });
  });

  it('names a missing binary, the config key that overrode it, and the package', () => {
    const [check] = binaryChecks('btrfs', [
      { tool: 'btrfs', resolvedPath: null, override: '/opt/none/btrfs' },
    ]);
    expect(check).toMatchObject({ name: 'binary btrfs', ok: false, severity: 'error' });
    expect(check?.detail).toMatch(/binaries\.btrfs/);
    expect(check?.fix).toMatch(/btrfs-progs/);
    const dm = binaryChecks('devicemapper', [{ tool: 'dmsetup', resolvedPath: '/sbin/dmsetup' }]);
    expect(dm.find((c) => c.name === 'binary lvextend')).toMatchObject({ ok: false, severity: 'warn' });
  });

  it('reports an unreachable Docker as an error and skips driver checks', () => {
    const checks = genericChecks(
      facts({ docker: { reachable: false, socketPath: '/run/x.sock', error: 'connect ENOENT /run/x.sock' } }),
    );
    expect(checks[0]).toMatchObject({ name: 'Docker reachable', ok: false, severity: 'error' });
    expect(checks.some((c) => c.name === 'storage driver supported')).toBe(false);
    expect(hostServable(checks)).toBe(false);
  });

  it('warns on old Docker APIs, compares versions numerically', () => {
    expect(compareApiVersions('1.9', '1.41')).toBe(-1);
    expect(compareApiVersions('1.43', '1.41')).toBe(1);
    const checks = genericChecks(
      facts({ docker: { reachable: true, socketPath: 's', info: info({ apiVersion: '1.39' }) } }),
    );
    const api = checks.find((c) => c.name === 'Docker API version');
    expect(api).toMatchObject({ ok: false, severity: 'warn' });
    expect(hostServable(checks)).toBe(true);
  });

  it('fails without privileges, socket access or a writable state directory', () => {
    const checks = genericChecks(
      facts({
        privileges: {
          uid: 1000,
          capSysAdmin: false,
          socket: { path: '/var/run/docker.sock', exists: true, readWrite: false },
          stateDir: { path: '/var/lib/docker-autogrow', writable: false, detail: '/var/lib: EACCES' },
        },
      }),
    );
    expect(checks.filter((c) => !c.ok).map((c) => c.name)).toEqual([
      'privileges',
      'Docker socket accessible',
      'state directory writable',
    ]);
  });
});

describe('doctor rendering and merging', () => {
  it('lets a backend check replace the generic one of the same name', () => {
    const merged = mergeChecks(
      [
        { name: 'live-restore', ok: false, severity: 'warn', detail: 'generic' },
        { name: 'privileges', ok: true, severity: 'error', detail: 'root' },
      ],
      [{ name: 'live-restore', ok: false, severity: 'warn', detail: 'devicemapper' }],
    );
    expect(merged.map((c) => c.detail)).toEqual(['root', 'devicemapper']);
  });

  it('renders ✓/✗/! with the fix under each failure, and the verdict', () => {
    const text = renderChecklist({
      ok: false,
      checks: [
        { name: 'privileges', ok: true, severity: 'error', detail: 'running as root' },
        {
          name: 'btrfs quotas enabled',
          ok: false,
          severity: 'error',
          detail: 'quotas off',
          fix: 'btrfs quota enable /d',
        },
        { name: 'live-restore', ok: false, severity: 'warn', detail: 'off', fix: 'set live-restore' },
      ],
    });
    expect(text).toBe(
      [
        '✓ privileges: running as root',
        '✗ btrfs quotas enabled: quotas off',
        '    fix: btrfs quota enable /d',
        '! live-restore: off',
        '    fix: set live-restore',
        '',
        'NOT OK: 1 error, 1 warning: docker-autogrow cannot serve this host until the errors are fixed.',
        '',
      ].join('\n'),
    );
    const json = JSON.parse(doctorJson({ ok: true, checks: [] })) as { ok: boolean; errors: number };
    expect(json).toMatchObject({ ok: true, errors: 0, warnings: 0 });
  });

  it('probes a real port (an address metrics.listen refuses is not free)', async () => {
    expect(await probeListen('host:99999')).toMatchObject({
      free: false,
      error: expect.stringMatching(/expected host:port/),
    });
    const server = createServer();
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = (server.address() as { port: number }).port;
    expect(await probeListen(`127.0.0.1:${port}`)).toEqual({ free: false, error: 'EADDRINUSE' });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await probeListen(`127.0.0.1:${port}`)).toEqual({ free: true });
  });
});
