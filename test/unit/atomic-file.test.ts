/** src/util/atomic-file.ts: replace a file whole, keep its mode, leave no temporary behind. */
import { chmodSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsyncDirectory, writeFileAtomic } from '../../src/util/atomic-file.js';
import { tempDir } from '../support/temp-dir.js';

describe('writeFileAtomic', () => {
  it('creates a file 0600 by default and replaces it whole, leaving no temporary', () => {
    const dir = tempDir('atomic');
    const file = path.join(dir, 'size');
    writeFileAtomic(file, '67108864');
    expect(readFileSync(file, 'utf8')).toBe('67108864');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    writeFileAtomic(file, '83886080');
    expect(readFileSync(file, 'utf8')).toBe('83886080');
    expect(readdirSync(dir)).toEqual(['size']);
  });

  it('keeps the mode of the file it replaces, and takes an explicit one for a new file', () => {
    const dir = tempDir('atomic');
    const existing = path.join(dir, 'metadata');
    writeFileSync(existing, '{}');
    chmodSync(existing, 0o640);
    const inodeBefore = statSync(existing).ino;
    writeFileAtomic(existing, '{"size":1}');
    expect(statSync(existing).mode & 0o777).toBe(0o640);
    // a rename, not a write in place: a reader holding the old file keeps the old content
    expect(statSync(existing).ino).not.toBe(inodeBefore);
    const fresh = path.join(dir, 'fresh');
    writeFileAtomic(fresh, 'x', { mode: 0o644 });
    expect(statSync(fresh).mode & 0o777).toBe(0o644);
  });

  it('fails without touching the target when the directory is missing', () => {
    const dir = tempDir('atomic');
    expect(() => writeFileAtomic(path.join(dir, 'missing', 'file'), 'x')).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('fsyncs a directory, and refuses a missing one', () => {
    const dir = tempDir('atomic');
    mkdirSync(path.join(dir, 'sub'));
    expect(() => fsyncDirectory(path.join(dir, 'sub'))).not.toThrow();
    expect(() => fsyncDirectory(path.join(dir, 'nope'))).toThrow(/ENOENT/);
  });
});
