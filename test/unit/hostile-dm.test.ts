/**
 * Hostile variants of the recorded device-mapper outputs (test/fixtures/dm-thin, docker-dm-loop,
 * docker-dm-lvm): `dmsetup status|table` (all devices and one), `dmsetup info -c`, the thin and
 * thin-pool target lines, and Docker's per-device metadata files. A ToolOutputError or what the
 * real output says; never a size read from a cut, garbled or oversized number.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
import {
  parseDmInfoColumns,
  parseDmsetupAllDevices,
  parseDmsetupOneDevice,
  parseDockerDeviceMetadata,
  parseThinPoolStatus,
  parseThinPoolTable,
  parseThinStatus,
  parseThinTable,
} from '../../src/storage/devicemapper/parse.js';
import { REPO_ROOT } from '../support/repo-root.js';
import { expectHostileSafe, withoutRecordingHeader } from './hostile-inputs.js';

const fixture = (name: string) =>
  withoutRecordingHeader(readFileSync(path.join(REPO_ROOT, 'test/fixtures', name), 'utf8'));

// Target arguments are a list of words: a column appended to a line is one more argument (a thin
// table's optional external origin, a status's trailing feature), so only the numbers must match.
const ARGS = { freeTextLastField: true };

describe('hostile dmsetup outputs', () => {
  for (const name of [
    'dm-thin/all/status.txt',
    'dm-thin/all/table.txt',
    'docker-dm-loop/dm/status-all.txt',
    'docker-dm-loop/dm/table-all.txt',
  ]) {
    it(`dmsetup status|table, all devices (${name})`, () => {
      expectHostileSafe(parseDmsetupAllDevices, fixture(name), ARGS);
    });
  }

  for (const name of [
    'dm-thin/all/info-columns.txt',
    'docker-dm-loop/dm/info-columns.txt',
    'docker-dm-lvm/dm/info-columns.txt',
  ]) {
    it(`dmsetup info -c (${name})`, () => {
      expectHostileSafe(parseDmInfoColumns, fixture(name), ARGS);
    });
  }

  const thinPoolStatus = (text: string) => parseDmsetupOneDevice(text).map(parseThinPoolStatus);
  for (const name of [
    'dm-thin/pool/status-rw.txt',
    'dm-thin/pool/status-needs_check.txt',
    'dm-thin/pool/status-out_of_data_space.txt',
    'dm-thin/pool/status-Fail.txt',
    'docker-dm-lvm/dm/pool-status.txt',
  ]) {
    it(`thin-pool status (${name})`, () => {
      expectHostileSafe(thinPoolStatus, fixture(name), ARGS);
    });
  }

  it('thin-pool table', () => {
    expectHostileSafe(
      (text) => parseDmsetupOneDevice(text).map(parseThinPoolTable),
      fixture('dm-thin/pool/table.txt'),
      ARGS,
    );
  });

  for (const name of [
    'dm-thin/thin/status.txt',
    'dm-thin/thin/status-unwritten.txt',
    'docker-dm-lvm/dm/container-status.txt',
  ]) {
    it(`thin status (${name})`, () => {
      expectHostileSafe((text) => parseDmsetupOneDevice(text).map(parseThinStatus), fixture(name), ARGS);
    });
  }

  it('thin table', () => {
    expectHostileSafe(
      (text) => parseDmsetupOneDevice(text).map(parseThinTable),
      fixture('dm-thin/thin/table.txt'),
      ARGS,
    );
  });

  for (const name of [
    'docker-dm-lvm/metadata/container-device.json',
    'docker-dm-loop/metadata/container-device.json',
  ]) {
    it(`Docker's device metadata (${name})`, () => {
      expectHostileSafe(parseDockerDeviceMetadata, fixture(name));
    });
  }
});
