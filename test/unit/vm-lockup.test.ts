/** The VM harness tells a hung guest kernel (a long soft lockup) from a slow one. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { GUEST_LOCKUP_SECONDS, longestSoftLockupSeconds } from '../vm/harness/run.js';

const RECORDED = readFileSync(
  path.join(import.meta.dirname, '../fixtures/vm/soft-lockup-console.txt'),
  'utf8',
);

it('reads the longest soft lockup of a recorded hung guest console, past the kill threshold', () => {
  expect(longestSoftLockupSeconds(RECORDED)).toBe(157);
  expect(longestSoftLockupSeconds(RECORDED)).toBeGreaterThanOrEqual(GUEST_LOCKUP_SECONDS);
});

it('ignores consoles without a lockup and short ones that recover', () => {
  expect(longestSoftLockupSeconds('[guest t=5.75s] guest-main: environment=docker-dm-lvm\n')).toBe(0);
  expect(
    longestSoftLockupSeconds('[   68.5] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [exe:690]\n'),
  ).toBe(26);
  expect(26).toBeLessThan(GUEST_LOCKUP_SECONDS);
  // an rcu stall line alone is not a lockup
  expect(longestSoftLockupSeconds('rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n')).toBe(0);
});
