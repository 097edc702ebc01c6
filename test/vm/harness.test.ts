/**
 * Tests of the VM harness itself, against real qemu guests: the image cache is keyed by the recipe
 * and reused; the guest's exit code reaches the host; a failing assertion inside the guest fails the
 * host's run; a guest that never powers off is killed at the timeout and reported as a failure.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readJunit } from '../support/junit.js';
import { describeWith } from '../support/prereqs.js';
import {
  assertVmRunPassed,
  CHECKOUT_DIR,
  ensureVmImage,
  runImageBuild,
  runInVm,
  vmPrereqs,
} from './harness/index.js';

function printImageDir(recipeRoot: string): string {
  const run = spawnSync(path.join(recipeRoot, 'build-image.sh'), ['--print-dir'], { encoding: 'utf8' });
  expect(run.status).toBe(0);
  return run.stdout.trim();
}

describe('VM run options are validated before anything boots', () => {
  it.each([
    [{ environment: 'nope' }, /unknown VM environment 'nope'/],
    [{ environment: 'none', script: '../outside.sh' }, /plain checkout-relative path/],
    [{ environment: 'none', script: '/etc/passwd' }, /plain checkout-relative path/],
    [{ environment: 'none', vitestFiles: ['test/guest/missing.test.ts'] }, /does not exist/],
    [{ environment: 'none', vitestFiles: ['a b.test.ts'] }, /plain checkout-relative path/],
    [{ environment: 'none', env: { 'BAD-NAME': 'x' } }, /invalid guest environment variable name/],
  ])('%o is refused', async (options, message) => {
    await expect(runInVm(options as Parameters<typeof runInVm>[0])).rejects.toThrow(message);
  });
});

describeWith(vmPrereqs, 'VM harness', () => {
  // Wall time of a trivial boot-run-poweroff on this machine right now (TCG speed depends on load).
  let trivialRunMs: number | undefined;

  beforeAll(async () => {
    const image = await ensureVmImage();
    console.log(`VM image ${image.dir}: ${image.built ? 'built' : 'reused'} in ${image.durationMs} ms`);
  });

  it('reuses the cached image on a second run, keyed by a hash of the recipe', async () => {
    const first = await ensureVmImage();
    const second = await runImageBuild();

    expect(second.built).toBe(false);
    expect(second.dir).toBe(first.dir);
    expect(second.durationMs).toBeLessThan(10_000);
    console.log(`image reuse took ${second.durationMs} ms`);

    // The cache key follows the recipe: a copy of it maps to the same directory, a changed copy not.
    const copy = mkdtempSync(path.join(tmpdir(), 'agvm-recipe-'));
    try {
      cpSync(path.join(CHECKOUT_DIR, 'test', 'vm', 'build-image.sh'), path.join(copy, 'build-image.sh'));
      cpSync(path.join(CHECKOUT_DIR, 'test', 'vm', 'guest', 'image'), path.join(copy, 'guest', 'image'), {
        recursive: true,
      });
      expect(printImageDir(copy)).toBe(first.dir);
      appendFileSync(path.join(copy, 'guest', 'image', 'vm-init.sh'), '# changed\n');
      const changed = printImageDir(copy);
      expect(changed).not.toBe(first.dir);
      expect(path.dirname(changed)).toBe(path.dirname(first.dir));
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it("returns the guest's exit code and console output", async () => {
    const result = await runInVm({
      environment: 'none',
      label: 'exit-code',
      shell: 'echo "hello from $(uname -r) on $(hostname)"; exit 7',
      timeoutMs: 15 * 60_000,
    });

    trivialRunMs = result.durationMs;
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).toBe(7);
    expect(result.consoleLog).toMatch(/hello from 6\.1\.\S+-amd64 on autogrow-vm/);
    expect(readFileSync(path.join(result.runDir, 'console.log'), 'utf8')).toBe(result.consoleLog);
    expect(() => assertVmRunPassed(result)).toThrow(/exited with 7/);
  });

  it("fails the host's run when an assertion inside the guest fails", async () => {
    const result = await runInVm({
      environment: 'none',
      label: 'failing-assertion',
      vitestFiles: ['test/guest/harness-probe.test.ts'],
      env: { AUTOGROW_PROBE_EXPECTED: 'grown', AUTOGROW_PROBE_ACTUAL: 'not grown' },
      timeoutMs: 20 * 60_000, // vitest start-up under TCG took 8+ min on a machine at load 30
    });

    expect(result.timedOut).toBe(false);
    expect(result.exitCode).not.toBe(0);
    expect(result.consoleLog).toContain("expected 'not grown' to be 'grown'");
    expect(readJunit(path.join(result.artifactsDir, 'junit.xml'))).toMatchObject([{ status: 'failed' }]);
    expect(() => assertVmRunPassed(result)).toThrow(/exited with/);
  });

  it('kills a guest that never powers off at the timeout and reports it as a failure', async () => {
    // Long enough for the guest to boot and reach the hang (scaled from a trivial run just measured),
    // short enough to keep CI fast.
    const timeoutMs = Math.round(1.5 * (trivialRunMs ?? 80_000)) + 20_000;
    const result = await runInVm({
      environment: 'none',
      label: 'hang',
      shell: 'echo "guest will now hang"; sleep infinity',
      timeoutMs,
    });

    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBe(255);
    expect(result.consoleLog).toContain('guest will now hang'); // it really booted and then hung
    expect(result.durationMs).toBeGreaterThanOrEqual(timeoutMs);
    expect(result.durationMs).toBeLessThan(timeoutMs + 15_000);
    expect(() => assertVmRunPassed(result)).toThrow(/timed out/);
    writeFileSync(path.join(result.runDir, 'expected-failure'), 'this run hangs on purpose\n');
  });
});
