/**
 * Runs INSIDE the test VM, launched by test/vm/harness.test.ts and test/vm/smoke.test.ts to prove that
 * a guest assertion decides the host's result: the host passes AUTOGROW_PROBE_EXPECTED and
 * AUTOGROW_PROBE_ACTUAL; equal values pass, different values fail (that run fails on purpose).
 */
import { expect, it } from 'vitest';
import { guestEnvironment } from '../vm/harness/guest.js';

it('sees the value the host expects', () => {
  expect(guestEnvironment().scratchDevice).toBe('/dev/vdb');
  expect(process.env.AUTOGROW_PROBE_ACTUAL).toBe(process.env.AUTOGROW_PROBE_EXPECTED);
});
