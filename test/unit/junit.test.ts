/** test/support/junit.ts: the guest verdict reader, on JUnit files the VM harness really wrote. */
import { describe, expect, it } from 'vitest';
import { declaredTestTitles, guestRunProblems, parseJunit } from '../support/junit.js';

// Verbatim from a real harness run (.vm-artifacts/…-failing-assertion-…/artifacts/junit.xml).
const FAILED_RUN = `<?xml version="1.0" encoding="UTF-8" ?>
<testsuites name="vitest tests" tests="1" failures="1" errors="0" time="0.41406428">
    <testsuite name="test/guest/harness-probe.test.ts" timestamp="2026-12-03T13:42:35.930Z" hostname="autogrow-vm" tests="1" failures="1" errors="0" skipped="0" time="0.41406428">
        <testcase classname="test/guest/harness-probe.test.ts" name="sees the value the host expects" time="0.30988915">
            <failure message="expected &apos;not grown&apos; to be &apos;grown&apos; // Object.is equality" type="AssertionError">
AssertionError: expected &apos;not grown&apos; to be &apos;grown&apos; // Object.is equality
 ❯ test/guest/harness-probe.test.ts:11:45
            </failure>
        </testcase>
    </testsuite>
</testsuites>
`;
// Verbatim from a real harness run (.vm-artifacts/…-smoke-dm-thin-raw-…/artifacts/junit.xml).
const PASSED_RUN = `<?xml version="1.0" encoding="UTF-8" ?>
<testsuites name="vitest tests" tests="1" failures="0" errors="0" time="0.44044739">
    <testsuite name="test/guest/harness-probe.test.ts" timestamp="2026-12-03T13:50:02.364Z" hostname="autogrow-vm" tests="1" failures="0" errors="0" skipped="0" time="0.44044739">
        <testcase classname="test/guest/harness-probe.test.ts" name="sees the value the host expects" time="0.27209586">
        </testcase>
    </testsuite>
</testsuites>
`;
const PROBE = 'test/guest/harness-probe.test.ts';

describe('junit reading', () => {
  it('reads passed and failed testcases', () => {
    expect(parseJunit(PASSED_RUN)).toEqual([
      { classname: PROBE, name: 'sees the value the host expects', status: 'passed' },
    ]);
    expect(parseJunit(FAILED_RUN)[0]?.status).toBe('failed');
  });

  it('reads skipped, error and self-closed testcases and unescapes names', () => {
    const xml = `<testsuites><testsuite>
      <testcase classname="a.ts" name="d &gt; one &amp; &quot;two&quot;"><skipped/></testcase>
      <testcase classname="a.ts" name="three"><error message="x"/></testcase>
      <testcase classname="a.ts" name="four"/>
    </testsuite></testsuites>`;
    expect(parseJunit(xml)).toEqual([
      { classname: 'a.ts', name: 'd > one & "two"', status: 'skipped' },
      { classname: 'a.ts', name: 'three', status: 'error' },
      { classname: 'a.ts', name: 'four', status: 'passed' },
    ]);
    expect(() => parseJunit('no xml')).toThrow(/no <testsuites>/);
  });

  it('reads the titles a guest file declares', () => {
    expect(declaredTestTitles(PROBE)).toEqual(['sees the value the host expects']);
    expect(declaredTestTitles('test/guest/devicemapper-lifecycle.test.ts').length).toBeGreaterThan(5);
    expect(declaredTestTitles('test/guest/overlay-xfs.test.ts').length).toBeGreaterThan(0);
  });

  it('a run passes only when every declared test passed', () => {
    expect(guestRunProblems(parseJunit(PASSED_RUN), PROBE)).toEqual([]);
    expect(guestRunProblems(parseJunit(FAILED_RUN), PROBE)).toEqual([
      'failed: sees the value the host expects',
    ]);
    const empty = '<testsuites name="vitest tests" tests="0"></testsuites>';
    expect(guestRunProblems(parseJunit(empty), PROBE)).toEqual([
      'did not run: sees the value the host expects',
    ]);
    const nested = PASSED_RUN.replace('name="sees', 'name="a suite &gt; sees');
    expect(guestRunProblems(parseJunit(nested), PROBE)).toEqual([]);
  });
});
