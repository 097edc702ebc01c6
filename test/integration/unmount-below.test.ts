/**
 * TestDockerd.destroy() unmounts what dockerd leaves below its directories before removing them
 * (a `--network host` build leaves a netns mount; the tree then fails to go with EBUSY).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { unmountBelow } from '../support/dockerd.js';
import { describeWith, prereqs } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);

describeWith([prereqs.root], 'unmountBelow', () => {
  it('unmounts nested mounts below a directory, deepest first, and leaves others alone', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'agumount-'));
    const outer = path.join(base, 'exec', 'netns');
    const inner = path.join(outer, 'with space');
    mkdirSync(outer, { recursive: true });
    await execFileAsync('/bin/mount', ['-t', 'tmpfs', 'tmpfs', outer]);
    mkdirSync(inner);
    await execFileAsync('/bin/mount', ['-t', 'tmpfs', 'tmpfs', inner]);

    const unmounted = await unmountBelow(base);

    expect(unmounted).toEqual([inner, outer]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(base);
    rmSync(base, { recursive: true });
    expect(existsSync(base)).toBe(false);
    expect(await unmountBelow(base)).toEqual([]);
  });
});
