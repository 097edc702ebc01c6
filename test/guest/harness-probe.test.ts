/**
 * Runs INSIDE the test VM, launched by test/vm/harness.test.ts to prove that a guest assertion decides
 * the host's result: the host passes AUTOGROW_PROBE_EXPECTED and AUTOGROW_PROBE_ACTUAL; equal values
 * pass, different values fail (that run is expected to fail, on purpose).
 */
import { expect, it } from 'vitest';
import { guestEnvironment } from '../vm/harness/guest.js';

it('sees the value the host expects', () => {
  expect(guestEnvironment().environment).toBe('none');
  expect(process.env.AUTOGROW_PROBE_ACTUAL).toBe(process.env.AUTOGROW_PROBE_EXPECTED);
});
