import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { cronExpressionProblem, startCronJob } from '../../src/schedule/cron.js';

describe('cron adapter (node-cron)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('accepts cron expressions with and without seconds and explains bad ones', () => {
    expect(cronExpressionProblem('0 3 * * *')).toBeNull();
    expect(cronExpressionProblem('*/30 * * * * *')).toBeNull();
    expect(cronExpressionProblem('61 * * * *')).toMatch(/minute/i);
    expect(cronExpressionProblem('every night')).not.toBeNull();
  });

  it('runs the job at the times the expression names, on a simulated clock', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(new Date(2026, 0, 1, 2, 59, 0));
    const runs: number[] = [];
    const job = startCronJob({
      name: 'test',
      expression: '0 3 * * *',
      logger: silentLogger(),
      run: () => {
        runs.push(Date.now());
      },
    });
    expect(job.nextRunAtMs()).toBe(new Date(2026, 0, 1, 3, 0, 0).getTime());
    await vi.advanceTimersByTimeAsync(59_000);
    expect(runs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(runs).toEqual([new Date(2026, 0, 1, 3, 0, 0).getTime()]);
    await vi.advanceTimersByTimeAsync(24 * 3600_000);
    expect(runs).toHaveLength(2);
    job.stop();
    expect(job.nextRunAtMs()).toBeNull();
    await vi.advanceTimersByTimeAsync(24 * 3600_000);
    expect(runs).toHaveLength(2);
  });

  it('refuses an invalid expression at start', () => {
    expect(() =>
      startCronJob({ name: 'bad', expression: '* * *', logger: silentLogger(), run: () => undefined }),
    ).toThrow(/invalid cron expression/);
  });
});
