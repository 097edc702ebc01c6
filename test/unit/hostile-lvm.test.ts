/**
 * Hostile variants of the recorded LVM JSON reports (`lvs`/`vgs --reportformat json`, from
 * test/fixtures/docker-dm-lvm and data-filesystem/lvm): both lvs parsers (the thin pool's, the
 * data filesystem's) and the vgs parser refuse with a ToolOutputError (never a SyntaxError or
 * TypeError) or read what LVM said.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLvsReport as parseDataFsLvsReport } from '../../src/storage/data-filesystem/lvm.js';
import { parseLvsReport, parseVgsReport } from '../../src/storage/devicemapper/parse.js';
import { ToolOutputError } from '../../src/storage/tool-output-error.js';
import { REPO_ROOT } from '../support/repo-root.js';
import { expectHostileSafe } from './hostile-inputs.js';

const fixture = (name: string) => readFileSync(path.join(REPO_ROOT, 'test/fixtures', name), 'utf8');

describe('hostile LVM reports', () => {
  for (const name of [
    'docker-dm-lvm/lvm/lvs-thinpool.json',
    'docker-dm-lvm/lvm/lvs-thinpool-extended.json',
  ]) {
    it(`lvs of the thin pool (${name})`, () => {
      expectHostileSafe(parseLvsReport, fixture(name));
    });
  }

  it('vgs (docker-dm-lvm/lvm/vgs.json)', () => {
    expectHostileSafe(parseVgsReport, fixture('docker-dm-lvm/lvm/vgs.json'));
  });

  for (const name of [
    'data-filesystem/lvm/lvs-ext4.json',
    'data-filesystem/lvm/lvs-xfs.json',
    'data-filesystem/lvm/lvs-ext4-after.json',
  ]) {
    it(`lvs of the data filesystem (${name})`, () => {
      expectHostileSafe(parseDataFsLvsReport, fixture(name));
    });
  }

  it('JSON of the wrong shape is a ToolOutputError, not a TypeError', () => {
    for (const text of [
      'null',
      '[]',
      '{"report": [null]}',
      '{"report": [{"lv": [null]}]}',
      '{"report": [{"lv": [{"lv_size": 5}]}]}',
    ]) {
      for (const parse of [parseLvsReport, parseVgsReport, parseDataFsLvsReport]) {
        let thrown: unknown = null;
        try {
          const rows = parse(text);
          if (Array.isArray(rows)) expect(rows, text).toEqual([]);
        } catch (error) {
          thrown = error;
        }
        if (thrown !== null) expect(thrown, `${parse.name}(${text})`).toBeInstanceOf(ToolOutputError);
      }
    }
  });
});
