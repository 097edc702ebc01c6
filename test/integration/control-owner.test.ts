/**
 * One owner for storage changes, with the real built CLI and a real agent on real btrfs: while
 * `docker-autogrow run` runs, `grow`, `once` and `status` are requests to it (its log and journal
 * own the grow, the CLI's own log has none of it); two grows of one container at once: one runs,
 * the other is refused; a second agent on the same state refuses to start; an agent killed with
 * SIGKILL in the middle of a grow leaves a journal entry that the next agent closes as
 * recovered, with no failure backoff.
 *
 * The grow is made slow (3 s) where a test needs it in flight, by a `binaries.btrfs` wrapper that
 * sleeps before `btrfs qgroup limit` while a flag file exists: fault injection, then the real tool.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ShippedAgent } from '../support/agent-process.js';
import { LoopBtrfs, TestDockerd } from '../support/dockerd.js';
import { runCli, type CliResult } from '../support/cli.js';
import { describeWith, prereqs } from '../support/prereqs.js';
import { REPO_ROOT } from '../support/repo-root.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 ** 2;

const cli = (args: string[]) => runCli(args, { timeoutMs: 300_000 });

describeWith(
  [prereqs.root, prereqs.dockerd, prereqs.busybox, prereqs.btrfs],
  'one owner for storage changes (real CLI, real agent, real btrfs)',
  () => {
    const btrfs = new LoopBtrfs(4 * 1024 ** 3);
    const workDir = mkdtempSync(path.join(tmpdir(), 'agown-'));
    const journalPath = path.join(workDir, 'state', 'journal.jsonl');
    const slowFlag = path.join(workDir, 'slow-grow');
    const configFile = path.join(workDir, 'config.yaml');
    let dockerd: TestDockerd;
    const agents: ShippedAgent[] = [];

    const journal = () =>
      existsSync(journalPath)
        ? readFileSync(journalPath, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as { type: string; containerId?: string; [key: string]: unknown })
        : [];
    const limitBytes = async (): Promise<number> => {
      const status = await cli(['--config', configFile, 'status', '--json']);
      expect(status.code, status.stderr).toBe(0);
      const parsed = JSON.parse(status.stdout) as { containers: Array<{ name: string; sizeBytes: number }> };
      return parsed.containers.find((container) => container.name === 'owned')!.sizeBytes;
    };
    const startAgent = async () => {
      const agent = new ShippedAgent(configFile);
      agents.push(agent);
      await agent.start(120_000);
      await agent.waitForLine('control socket listening');
      return agent;
    };
    const waitFor = async (what: string, condition: () => boolean, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };

    beforeAll(async () => {
      try {
        await execFileAsync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, timeout: 300_000 });
      } catch (error) {
        const failure = error as { stdout?: string; stderr?: string };
        throw new Error(`npm run build failed:\n${failure.stdout ?? ''}${failure.stderr ?? ''}`);
      }
      await btrfs.create();
      dockerd = new TestDockerd({ storageDriver: 'btrfs', dataRoot: btrfs.mountPoint });
      await dockerd.start();
      const image = await dockerd.ensureBusyboxImage();
      await dockerd.cli(['run', '-d', '--name', 'owned', '--storage-opt', 'size=256M', image, 'sleep', '1d']);
      const wrapper = path.join(workDir, 'btrfs-slow');
      writeFileSync(
        wrapper,
        [
          '#!/bin/sh',
          `if [ "$1" = qgroup ] && [ "$2" = limit ] && [ -e ${slowFlag} ]; then /bin/sleep 3; fi`,
          'exec /bin/btrfs "$@"',
          '',
        ].join('\n'),
      );
      chmodSync(wrapper, 0o755);
      // Long interval, no fill guard: every grow in this file is one the CLI asked for.
      writeFileSync(
        configFile,
        [
          'interval: 10m',
          'guard: { enabled: false }',
          'metrics: { enabled: false }',
          `docker: { socketPath: ${dockerd.socketPath} }`,
          `journal: { path: ${journalPath} }`,
          `binaries: { btrfs: ${wrapper} }`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
    }, 400_000);

    afterAll(async () => {
      for (const agent of agents) await agent.stop();
      await dockerd?.destroy();
      await btrfs.destroy();
      rmSync(workDir, { recursive: true, force: true });
    });

    it('grow, once and status go through the running agent: its log and journal own the grow', async () => {
      const agent = await startAgent();
      const sizeBefore = await limitBytes();
      const recordsBefore = journal().length;
      const linesBefore = agent.lines.length;
      const grown = await cli(['--config', configFile, 'grow', 'owned', '--by', '64M', '--json']);
      expect(grown.code, grown.stderr).toBe(0);
      expect(JSON.parse(grown.stdout)).toMatchObject({ result: 'grown', fromBytes: sizeBefore });
      // the agent grew it: its log has the grow, the CLI's log (stderr) has none
      const line = await agent.waitForLine('grow succeeded', 10_000, linesBefore);
      expect(line).toMatchObject({ name: 'owned', trigger: 'manual', toBytes: sizeBefore + 64 * MiB });
      expect(grown.stderr).not.toMatch(/grow succeeded|grow-started/);
      expect(
        journal()
          .slice(recordsBefore)
          .map((record) => record.type),
      ).toEqual(['grow-started', 'grow-succeeded']);
      // status is the agent's latest real pass (an in-process status is a dry run), and it shows
      // the new size once the pass that follows a manual grow is done
      const deadline = Date.now() + 20_000;
      while ((await limitBytes()) !== sizeBefore + 64 * MiB && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const status = await cli(['--config', configFile, 'status', '--json']);
      // ... and names the daemon the agent watches, as an in-process status does
      expect(JSON.parse(status.stdout)).toMatchObject({
        dryRun: false,
        dockerEndpoint: expect.stringMatching(/^unix:\/\/\S+ \(from /),
      });
      const statusText = await cli(['--config', configFile, 'status']);
      expect(statusText.stdout).toMatch(/^Docker: unix:\/\/\S+ \(from /);
      expect(await limitBytes()).toBe(sizeBefore + 64 * MiB);
      // once: a pass of the agent's (nothing is above its threshold: nothing grows)
      const once = await cli(['--config', configFile, 'once', '--json']);
      expect(once.code, once.stderr).toBe(0);
      expect(JSON.parse(once.stdout)).toMatchObject({ dryRun: false });
      expect(journal().slice(recordsBefore)).toHaveLength(2);
      // a missing container is a usage error (exit 2), from the agent as from the CLI alone
      const missing = await cli(['--config', configFile, 'grow', 'no-such-container', '--by', '64M']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('no container "no-such-container"');
    });

    it('two grows of one container at once: one runs, the other is refused, never both', async () => {
      const sizeBefore = await limitBytes();
      const recordsBefore = journal().length;
      writeFileSync(slowFlag, '');
      try {
        const first = cli(['--config', configFile, 'grow', 'owned', '--by', '64M', '--json']);
        await waitFor('the first grow to start', () =>
          journal()
            .slice(recordsBefore)
            .some((record) => record.type === 'grow-started'),
        );
        const second = await cli(['--config', configFile, 'grow', 'owned', '--by', '64M', '--json']);
        expect(second.code).toBe(1);
        expect(JSON.parse(second.stdout)).toMatchObject({ result: 'refused', reason: 'in-flight' });
        const firstResult = await first;
        expect(firstResult.code, firstResult.stderr).toBe(0);
        expect(JSON.parse(firstResult.stdout)).toMatchObject({ result: 'grown' });
      } finally {
        unlinkSync(slowFlag);
      }
      expect(
        journal()
          .slice(recordsBefore)
          .map((record) => record.type),
      ).toEqual(['grow-started', 'grow-succeeded']);
      const deadline = Date.now() + 20_000;
      while ((await limitBytes()) === sizeBefore && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(await limitBytes()).toBe(sizeBefore + 64 * MiB);
    });

    it('a second agent on the same state refuses to start, saying which one runs', async () => {
      const running = agents[agents.length - 1]!;
      const second = await cli(['--config', configFile, 'run']);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain('another docker-autogrow agent runs on this host');
      expect(second.stderr).toContain(`pid ${running.pid} (run)`);
    });

    it('an agent killed mid-grow: the next one closes the grow as recovered, without a backoff', async () => {
      const victim = agents[agents.length - 1]!;
      const recordsBefore = journal().length;
      writeFileSync(slowFlag, '');
      let interrupted: CliResult;
      try {
        const grow = cli(['--config', configFile, 'grow', 'owned', '--by', '64M']);
        await waitFor('the grow to start', () =>
          journal()
            .slice(recordsBefore)
            .some((record) => record.type === 'grow-started'),
        );
        await victim.kill();
        interrupted = await grow;
      } finally {
        unlinkSync(slowFlag);
      }
      expect(interrupted.code).toBe(1);
      expect(interrupted.stderr).toContain('closed the control connection without answering');
      expect(
        journal()
          .slice(recordsBefore)
          .map((record) => record.type),
      ).toEqual(['grow-started']);

      const restarted = await startAgent();
      const recovered = await restarted.waitForLine('interrupted grow recovered');
      expect(recovered).toMatchObject({ name: 'owned', consecutiveInterruptions: 1, backoffUntilMs: null });
      expect(
        journal()
          .slice(recordsBefore)
          .map((record) => record.type),
      ).toEqual(['grow-started', 'grow-recovered']);
      const status = await cli(['--config', configFile, 'status', '--json']);
      const container = (
        JSON.parse(status.stdout) as { containers: Array<{ name: string; backoffUntilMs: number | null }> }
      ).containers.find((candidate) => candidate.name === 'owned');
      expect(container?.backoffUntilMs).toBeNull();
      // later commands, with or without an agent, do not report it again
      await restarted.stop();
      const local = await cli(['--config', configFile, 'status']);
      expect(local.code, local.stderr).toBe(0);
      expect(local.stderr).not.toMatch(/interrupt|not finished/);
      const grow = await cli(['--config', configFile, 'grow', 'owned', '--by', '64M']);
      expect(grow.code, grow.stderr).toBe(0);
      expect(grow.stderr).not.toMatch(/interrupt|not finished/);
      const missing = await cli(['--config', configFile, 'grow', 'no-such-container', '--by', '64M']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('no container "no-such-container"');
      // a hostile reference is refused before Docker or an agent is asked anything
      const hostile = await cli(['--config', configFile, 'grow', '$(touch /tmp/x);', '--by', '64M']);
      expect(hostile.code).toBe(2);
      expect(hostile.stderr).toContain('is not a container name or id');
    });
  },
);
