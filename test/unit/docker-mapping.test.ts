import { describe, expect, it } from 'vitest';
import {
  DockerDataError,
  mapContainerInspect,
  mapDockerInfo,
  parseStorageOptSizeBytes,
} from '../../src/docker/mapping.js';
import { fixture } from '../support/scripted-runner.js';

// Recorded from real dockerds by test/fixtures/docker/record.ts.
const json = (name: string): Record<string, unknown> => JSON.parse(fixture(`docker/${name}`));

describe('mapContainerInspect on recorded inspect JSON', () => {
  it('maps a running btrfs container with a 64M size limit and labels', () => {
    const raw = json('btrfs/inspect-running-sized.json');
    const state = raw['State'] as { Pid: number };
    expect(mapContainerInspect(raw)).toEqual({
      id: raw['Id'],
      name: 'sized-running',
      image: 'autogrow-busybox:test',
      labels: { 'autogrow.max-size': '1G', team: 'storage' },
      state: 'running',
      running: true,
      pid: state.Pid,
      storageDriver: 'btrfs',
      graphDriverData: {},
      storageOptSizeBytes: 64 * 1024 ** 2,
    });
    expect(state.Pid).toBeGreaterThan(0);
  });

  it('maps a created (renamed) container without a size limit', () => {
    const raw = json('btrfs/inspect-created.json');
    expect(mapContainerInspect(raw)).toMatchObject({
      id: raw['Id'],
      name: 'created-renamed',
      state: 'created',
      running: false,
      pid: 0,
      labels: {},
      storageOptSizeBytes: null,
    });
  });

  it('maps an exited container with size=1G', () => {
    expect(mapContainerInspect(json('btrfs/inspect-exited.json'))).toMatchObject({
      name: 'exited-sized',
      state: 'exited',
      running: false,
      pid: 0,
      storageOptSizeBytes: 1024 ** 3,
    });
  });

  it('keeps overlay2 GraphDriver.Data as strings', () => {
    const info = mapContainerInspect(json('overlay2-ext4/inspect-running.json'));
    expect(info.storageDriver).toBe('overlay2');
    expect(Object.keys(info.graphDriverData).sort()).toEqual([
      'LowerDir',
      'MergedDir',
      'UpperDir',
      'WorkDir',
    ]);
    expect(info.graphDriverData['UpperDir']).toMatch(/\/overlay2\/[0-9a-f]{64}\/diff$/);
  });

  it('rejects an inspect without a valid Id, and survives missing or odd fields', () => {
    expect(() => mapContainerInspect({})).toThrow(DockerDataError);
    expect(() => mapContainerInspect({ Id: '../../etc' })).toThrow(DockerDataError);
    expect(() => mapContainerInspect(null)).toThrow(DockerDataError);
    const id = 'c'.repeat(64);
    expect(
      mapContainerInspect({
        Id: id,
        State: { Status: 'weird', Running: true, Pid: -4 },
        Config: { Labels: { ok: 'yes', bad: 3 } },
        GraphDriver: { Data: 'nope' },
        HostConfig: { StorageOpt: null },
      }),
    ).toEqual({
      id,
      name: 'cccccccccccc', // no name: the short id stands in
      image: '',
      labels: { ok: 'yes' },
      state: 'running',
      running: true,
      pid: 0,
      storageDriver: '',
      graphDriverData: {},
      storageOptSizeBytes: null,
    });
  });

  it("replaces a name that breaks Docker's rule (newline, escape, slash) by the short id", () => {
    const id = 'd'.repeat(64);
    for (const hostile of ['/web\nINFO fake line', '/\u001b[2Jclear', '/a/b', '/-dash', '/' + 'x;$(id)']) {
      expect(mapContainerInspect({ Id: id, Name: hostile }).name).toBe('dddddddddddd');
    }
    expect(mapContainerInspect({ Id: id, Name: '/web_1.blue-2' }).name).toBe('web_1.blue-2');
  });
});

describe('parseStorageOptSizeBytes', () => {
  it('reads the sizes Docker accepts', () => {
    expect(parseStorageOptSizeBytes({ size: '64M' })).toBe(64 * 1024 ** 2);
    expect(parseStorageOptSizeBytes({ size: '10G' })).toBe(10 * 1024 ** 3);
    expect(parseStorageOptSizeBytes({ size: '10GiB' })).toBe(10 * 1024 ** 3);
    expect(parseStorageOptSizeBytes({ size: '512mb' })).toBe(512 * 1024 ** 2);
    expect(parseStorageOptSizeBytes({ size: '1073741824' })).toBe(1073741824);
    expect(parseStorageOptSizeBytes({ size: '1.5g' })).toBe(1.5 * 1024 ** 3);
    expect(parseStorageOptSizeBytes({ size: '64 MB' })).toBe(64 * 1024 ** 2);
    // drivers read the key case-insensitively; HostConfig keeps it as the user typed it
    expect(parseStorageOptSizeBytes({ Size: '20G' })).toBe(20 * 1024 ** 3);
    expect(parseStorageOptSizeBytes({ SIZE: '20G' })).toBe(20 * 1024 ** 3);
    expect(parseStorageOptSizeBytes({})).toBeNull();
    expect(parseStorageOptSizeBytes(null)).toBeNull();
    expect(parseStorageOptSizeBytes({ size: '' })).toBeNull();
  });

  it('refuses a limit it cannot read rather than calling it "no limit"', () => {
    expect(() => parseStorageOptSizeBytes({ size: 'lots' })).toThrow(DockerDataError);
    expect(() => parseStorageOptSizeBytes({ size: 5 })).toThrow(DockerDataError);
  });
});

describe('mapDockerInfo on recorded /info and /version', () => {
  it('maps btrfs info with its DriverStatus pairs and the API version', () => {
    const info = json('btrfs/info.json');
    expect(mapDockerInfo(info, json('btrfs/version.json'))).toEqual({
      serverVersion: '20.10.24+dfsg1',
      apiVersion: '1.41',
      driver: 'btrfs',
      driverStatus: [
        ['Build Version', 'Btrfs v6.2'],
        ['Library Version', '102'],
      ],
      dockerRootDir: info['DockerRootDir'],
      liveRestoreEnabled: false,
      containersRunning: 1,
    });
  });

  it('maps overlay2 DriverStatus in order', () => {
    expect(mapDockerInfo(json('overlay2-ext4/info.json')).driverStatus).toEqual([
      ['Backing Filesystem', 'extfs'],
      ['Supports d_type', 'true'],
      ['Native Overlay Diff', 'true'],
      ['userxattr', 'false'],
    ]);
  });

  it('survives a malformed answer', () => {
    expect(
      mapDockerInfo({ DriverStatus: [['a'], 'x', ['k', 'v'], [1, 2]], ContainersRunning: -1 }, null),
    ).toEqual({
      serverVersion: '',
      apiVersion: '',
      driver: '',
      driverStatus: [['k', 'v']],
      dockerRootDir: '',
      liveRestoreEnabled: false,
      containersRunning: 0,
    });
  });
});
