/**
 * A child process for the process-lock tests (bundled by test/support/bundle.ts, run with node):
 * waits until `startAtMs`, tries the lock once, prints `won <generation>` or `busy <pid>`, then a
 * winner waits for a line on stdin: `release` releases and exits, `exit` (or stdin closing) exits
 * holding the lock, which leaves it stale.
 */
import { tryAcquireProcessLock } from '../../src/util/process-lock.js';

const [lockPath, startAtText, role] = process.argv.slice(2);
if (!lockPath || !startAtText) throw new Error('usage: process-lock-child <lockPath> <startAtMs> [role]');
const startAtMs = Number(startAtText);

await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAtMs - Date.now() - 2)));
while (Date.now() < startAtMs) {
  // spin the last milliseconds so every child tries at the same moment
}
const result = tryAcquireProcessLock(lockPath, { role: role ?? 'test' });
if ('busy' in result) {
  process.stdout.write(`busy ${result.busy.pid}\n`);
  process.exit(0);
}
const held = result.held;
process.stdout.write(`won ${held.generation}\n`);
let input = '';
process.stdin.on('data', (chunk: Buffer) => {
  input += chunk.toString('utf8');
  if (input.includes('release\n')) {
    held.release();
    process.exit(0);
  }
  if (input.includes('exit\n')) process.exit(0);
});
process.stdin.on('end', () => process.exit(0));
