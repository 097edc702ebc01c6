/** The strict fake runner's own contract: exact argv, nothing unexpected, nothing left over. */
import { describe, expect, it } from 'vitest';
import { isCommandError } from '../../src/exec/runner.js';
import { ScriptedRunner, fixture } from '../support/scripted-runner.js';

describe('ScriptedRunner', () => {
  it('replies to the scripted commands, in order, and records the calls', async () => {
    const runner = new ScriptedRunner()
      .expect('dmsetup', ['table', 'dev'], { stdout: '0 100 thin 253:0 7\n' })
      .expect('xfs_growfs', ['/mnt'], { stdout: 'data blocks changed\n' });
    expect((await runner.run({ tool: 'dmsetup', args: ['table', 'dev'] })).stdout).toBe(
      '0 100 thin 253:0 7\n',
    );
    expect((await runner.run({ tool: 'xfs_growfs', args: ['/mnt'] })).exitCode).toBe(0);
    expect(runner.calls.map((call) => `${call.tool} ${call.args.join(' ')}`)).toEqual([
      'dmsetup table dev',
      'xfs_growfs /mnt',
    ]);
    runner.assertDone();
  });

  it('fails on an unexpected command and names the one it expected', async () => {
    const runner = new ScriptedRunner().expect('dmsetup', ['status', 'pool']);
    await expect(runner.run({ tool: 'dmsetup', args: ['remove', 'pool'] })).rejects.toThrow(
      'unexpected command: dmsetup ["remove","pool"]; next expected: dmsetup status pool',
    );
    await expect(runner.run({ tool: 'lvs', args: [] })).rejects.toThrow(/unexpected command/);
  });

  it('matches argv exactly: one argument more, less, or different is unexpected', async () => {
    const runner = new ScriptedRunner(false).expect('btrfs', ['qgroup', 'show', '/mnt']);
    await expect(runner.run({ tool: 'btrfs', args: ['qgroup', 'show', '/mnt', '-r'] })).rejects.toThrow();
    await expect(runner.run({ tool: 'btrfs', args: ['qgroup', 'show'] })).rejects.toThrow();
    await expect(runner.run({ tool: 'btrfs', args: ['qgroup', 'show', '/mnt '] })).rejects.toThrow();
    await expect(runner.run({ tool: 'blkid', args: ['qgroup', 'show', '/mnt'] })).rejects.toThrow();
    await runner.run({ tool: 'btrfs', args: ['qgroup', 'show', '/mnt'] });
    runner.assertDone();
  });

  it('enforces order when ordered, not when unordered', async () => {
    const ordered = new ScriptedRunner().expect('df', ['a']).expect('df', ['b']);
    await expect(ordered.run({ tool: 'df', args: ['b'] })).rejects.toThrow(/next expected: df a/);
    const unordered = new ScriptedRunner(false).expect('df', ['a']).expect('df', ['b']);
    await unordered.run({ tool: 'df', args: ['b'] });
    await unordered.run({ tool: 'df', args: ['a'] });
    unordered.assertDone();
  });

  it('runs a one-shot command once and an allowed one any number of times', async () => {
    const runner = new ScriptedRunner().expect('stat', ['x']).allow('findmnt', ['-J'], { stdout: '{}' });
    await runner.run({ tool: 'stat', args: ['x'] });
    await expect(runner.run({ tool: 'stat', args: ['x'] })).rejects.toThrow(/unexpected command/);
    for (let i = 0; i < 3; i += 1)
      expect((await runner.run({ tool: 'findmnt', args: ['-J'] })).stdout).toBe('{}');
    runner.assertDone();
  });

  it('assertDone fails listing commands that never ran', () => {
    const runner = new ScriptedRunner()
      .expect('dmsetup', ['load', 'dev'])
      .expect('dmsetup', ['resume', 'dev']);
    expect(() => runner.assertDone()).toThrow(
      'scripted commands never ran:\n  dmsetup load dev\n  dmsetup resume dev',
    );
  });

  it('turns failing replies into the same CommandError the real runner throws', async () => {
    const runner = new ScriptedRunner()
      .expect('dmsetup', ['resume', 'd'], { exitCode: 1, stderr: 'resume ioctl failed: Invalid argument\n' })
      .expect('lvs', [], { timedOut: true })
      .expect('blkid', [], { spawnFailed: true })
      .expect('vgs', [], { signal: 'SIGKILL' });
    const kinds: string[] = [];
    for (const tool of ['dmsetup', 'lvs', 'blkid', 'vgs'] as const) {
      const args = tool === 'dmsetup' ? ['resume', 'd'] : [];
      try {
        await runner.run({ tool, args });
        kinds.push('ok');
      } catch (error) {
        if (!isCommandError(error)) throw error;
        kinds.push(error.kind);
        if (tool === 'dmsetup') {
          expect(error.exitCode).toBe(1);
          expect(error.stderr).toBe('resume ioctl failed: Invalid argument');
        }
      }
    }
    expect(kinds).toEqual(['exit', 'timeout', 'spawn', 'signal']);
    runner.assertDone();
  });

  it('runs reply effects when the command runs (fault injection)', async () => {
    const order: string[] = [];
    const runner = new ScriptedRunner().expect('truncate', ['-s', '2G', 'f'], {
      effect: () => void order.push('effect'),
    });
    order.push('before');
    await runner.run({ tool: 'truncate', args: ['-s', '2G', 'f'] });
    order.push('after');
    expect(order).toEqual(['before', 'effect', 'after']);
  });

  it('reads recorded fixtures', () => {
    expect(JSON.parse(fixture('docker/btrfs/version.json'))).toMatchObject({ ApiVersion: '1.41' });
    expect(() => fixture('docker/no-such-file')).toThrow(/ENOENT/);
  });
});
