/** The manual grow's refusal rules as pure policy (src/policy/manual-grow.ts). */
import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../../src/config/load.js';
import { decideManualGrow, type ManualGrowInput } from '../../src/policy/manual-grow.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const config = parseConfigObject({}, 'test');
const input = (overrides: Partial<ManualGrowInput>): ManualGrowInput => ({
  config,
  maxSizeBytes: 8 * GiB,
  ruleName: 'defaults',
  sizeBytes: 1 * GiB,
  pool: null,
  target: { toBytes: 2 * GiB },
  force: false,
  ...overrides,
});

describe('decideManualGrow', () => {
  it('grows to a whole MiB', () => {
    expect(decideManualGrow(input({ target: { toBytes: 2 * GiB + 1 } }))).toMatchObject({
      kind: 'grow',
      fromBytes: 1 * GiB,
      toBytes: 2 * GiB + MiB,
      warnings: [],
    });
    expect(decideManualGrow(input({ target: { byBytes: 512 * MiB } }))).toMatchObject({
      kind: 'grow',
      toBytes: 1.5 * GiB,
    });
  });

  it('never shrinks; refuses without a limit', () => {
    expect(decideManualGrow(input({ target: { toBytes: 512 * MiB } }))).toMatchObject({ kind: 'noop' });
    expect(decideManualGrow(input({ sizeBytes: null }))).toMatchObject({
      kind: 'refused',
      reason: 'no-limit',
    });
  });

  it('refuses beyond maxSize unless forced, and a forced exact target is not rounded past maxSize', () => {
    expect(decideManualGrow(input({ target: { toBytes: 9 * GiB } }))).toMatchObject({
      kind: 'refused',
      reason: 'at-max-size',
    });
    const forced = decideManualGrow(input({ target: { toBytes: 9 * GiB }, force: true }));
    expect(forced).toMatchObject({ kind: 'grow', toBytes: 9 * GiB });
    if (forced.kind === 'grow') expect(forced.warnings[0]).toMatch(/forced beyond maxSize/);
    expect(
      decideManualGrow(
        input({ maxSizeBytes: 2 * GiB + 100, target: { toBytes: 2 * GiB + 50 }, force: true }),
      ),
    ).toMatchObject({ kind: 'grow', toBytes: 2 * GiB + 100 });
  });
});
