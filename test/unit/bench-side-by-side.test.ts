/** The side-by-side benchmark's /proc readers (bench/side-by-side.ts), on real and recorded text. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { shippedMallocEnvironment, shippedNodeFlags } from '../../bench/lib/agent-process.js';
import { counterValue, processCpuMs, rssBytes } from '../../bench/side-by-side.js';

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

describe('side-by-side: the agent as shipped and its counters', () => {
  it("takes the Node flags from the shipped unit's NODE_OPTIONS line", () => {
    const unit = readFileSync(
      new URL('../../deploy/systemd/docker-autogrow.service', import.meta.url),
      'utf8',
    );
    expect(shippedNodeFlags(unit)).toEqual(['--max-semi-space-size=1']);
    expect(shippedNodeFlags('[Service]\nEnvironment=AUTOGROW_CONFIG=/x\n')).toEqual([]);
    expect(shippedMallocEnvironment(unit)).toEqual({ MALLOC_ARENA_MAX: '2' });
    expect(shippedMallocEnvironment('[Service]\nEnvironment=AUTOGROW_CONFIG=/x\n')).toEqual({});
  });

  it('reads an unlabelled counter from a Prometheus text body, NaN when absent', () => {
    const body = [
      '# HELP docker_autogrow_passes_total Whole-host observation passes completed.',
      '# TYPE docker_autogrow_passes_total counter',
      'docker_autogrow_passes_total 42',
      'docker_autogrow_passes_total_created 1.7e9',
      'docker_autogrow_guard_looks_total 7',
    ].join('\n');
    expect(counterValue(body, 'docker_autogrow_passes_total')).toBe(42);
    expect(counterValue(body, 'docker_autogrow_guard_looks_total')).toBe(7);
    expect(counterValue(body, 'docker_autogrow_absent_total')).toBeNaN();
  });
});
