/** The side-by-side benchmark's /proc readers (bench/side-by-side.ts), on real and recorded text. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { processCpuMs, rssBytes } from '../../bench/side-by-side.js';

describe('side-by-side /proc readers', () => {
  it('reads utime+stime and cutime+cstime after the last ")" of a command name with spaces', () => {
    // a /proc/<pid>/stat line whose comm holds ") (" : the fields start after the LAST ')'
    const stat = '4242 (node a) (b)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 11 0 100 0 0';
    expect(processCpuMs(stat)).toEqual({ selfMs: 3000, childrenMs: 100 });
  });

  it('reads this process: CPU grows, RSS is VmRSS in bytes', () => {
    const before = processCpuMs(readFileSync('/proc/self/stat', 'utf8'));
    let spin = 0;
    const until = performance.now() + 50;
    while (performance.now() < until) spin += 1;
    const after = processCpuMs(readFileSync('/proc/self/stat', 'utf8'));
    expect(spin).toBeGreaterThan(0);
    expect(after.selfMs).toBeGreaterThanOrEqual(before.selfMs);
    const rss = rssBytes(readFileSync('/proc/self/status', 'utf8'));
    expect(rss).toBeGreaterThan(10 * 1024 ** 2);
    expect(rss % 1024).toBe(0);
    expect(() => rssBytes('Name:\tnode\n')).toThrow(/VmRSS/);
  });
});
