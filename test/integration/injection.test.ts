/**
 * Hostile container names and labels reach commands only as inert arguments: real containers on a
 * real dockerd carry them, the inventory reads them back through dockerode, and the ExecaRunner
 * hands them to a real process that records its argv. Every value must arrive byte-for-byte as one
 * argv element, and nothing a shell would do ($(...), `...`, ;, globbing) may happen.
 */
import http from 'node:http';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
import { DockerInventory } from '../../src/docker/inventory.js';
import { CommandError, ExecaRunner } from '../../src/exec/runner.js';
import { silentLogger } from '../../src/log/logger.js';
import { TestDockerd } from '../support/dockerd.js';
import { describeWith, prereqs } from '../support/prereqs.js';

function engine(socketPath: string, method: string, urlPath: string, body?: unknown) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request(
      {
        socketPath,
        method,
        path: urlPath,
        headers: payload
          ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }
          : {},
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

describeWith([prereqs.root, prereqs.dockerd, prereqs.busybox], 'hostile names and labels stay inert', () => {
  let dockerd: TestDockerd;
  let image: string;
  let work: string;
  let inventory: DockerInventory;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'aginj-'));
    dockerd = new TestDockerd();
    await dockerd.start();
    image = await dockerd.ensureBusyboxImage();
  });

  afterAll(async () => {
    await inventory?.stop();
    await dockerd?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('passes them byte-for-byte as single argv elements, with no shell interpretation', async () => {
    const canary = (n: number) => path.join(work, `canary-${n}`);
    const hostileLabels: Record<string, string> = {
      'evil.semicolon': 'x; rm -rf /',
      'evil.subst': `$(touch ${canary(1)})`,
      'evil.backtick': `\`touch ${canary(2)}\``,
      'evil.option': '--help',
      'evil.newline': 'first line\nsecond line; touch ' + canary(3),
      'evil.quotes': `'"\\' && touch ${canary(4)} #`,
      'evil.glob': '*',
      'evil.redirect': `> ${canary(5)}`,
      'evil.pipe': `| tee ${canary(6)}`,
      'evil.var': '$HOME ${PATH} $((1+1))',
      'evil.empty': '',
      'evil.spaces': '  padded  ',
      'evil.unicode': 'é→✓ \u202e',
      'evil.tab': 'a\tb\r\n',
      [`$(touch ${canary(7)})`]: 'the key is hostile too',
    };
    // Docker only accepts names matching [a-zA-Z0-9][a-zA-Z0-9_.-]+: the hostile ones go in labels.
    for (const rejected of ['--help', 'x; rm -rf /', '$(reboot)', 'a\nb', '-rf']) {
      const answer = await engine(
        dockerd.socketPath,
        'POST',
        `/containers/create?name=${encodeURIComponent(rejected)}`,
        {
          Image: image,
          Cmd: ['true'],
        },
      );
      expect(answer.status, rejected).toBe(400);
    }
    const names = ['x--help', 'a.-rf_', '0..-'];
    for (const name of names) {
      const answer = await engine(dockerd.socketPath, 'POST', `/containers/create?name=${name}`, {
        Image: image,
        Cmd: ['sleep', '3600'],
        Labels: hostileLabels,
      });
      expect(answer.status, answer.body).toBe(201);
    }

    const client = new DockerClient({ socketPath: dockerd.socketPath, timeoutMs: 10_000 });
    inventory = new DockerInventory({
      api: client,
      events: client,
      logger: silentLogger(),
      resyncIntervalMs: 60_000,
    });
    await inventory.start();

    // A real process that records its argv (as JSON) and nothing else.
    const argvOut = path.join(work, 'argv.json');
    const recorder = path.join(work, 'record-argv');
    writeFileSync(
      recorder,
      `#!${process.execPath}\nrequire('fs').writeFileSync(${JSON.stringify(argvOut)}, JSON.stringify(process.argv.slice(2)));\n`,
    );
    chmodSync(recorder, 0o755);
    const runner = new ExecaRunner({ binaries: { btrfs: recorder } });

    for (const name of names) {
      const info = inventory.find(name);
      expect(info, name).toBeDefined();
      if (!info) continue;
      expect(info.labels).toEqual(hostileLabels);
      const args = [
        info.name,
        ...Object.keys(info.labels).sort(),
        ...Object.keys(info.labels)
          .sort()
          .map((key) => info.labels[key] as string),
      ];
      rmSync(argvOut, { force: true });
      await runner.run({ tool: 'btrfs', args });
      const received = JSON.parse(readFileSync(argvOut, 'utf8')) as string[];
      expect(received).toHaveLength(args.length);
      received.forEach((arg, index) => {
        expect(
          Buffer.from(arg, 'utf8').equals(Buffer.from(args[index] as string, 'utf8')),
          `argv[${index}]`,
        ).toBe(true);
      });
    }
    // Nothing a shell would have done happened: no canary file, nothing else in the directory.
    for (let n = 1; n <= 7; n += 1) expect(existsSync(canary(n)), canary(n)).toBe(false);
    expect(readdirSync(work).sort()).toEqual(['argv.json', 'record-argv']);
  });

  it('refuses an argument with a NUL byte instead of truncating it', async () => {
    const runner = new ExecaRunner({ binaries: { btrfs: path.join(work, 'record-argv') } });
    rmSync(path.join(work, 'argv.json'), { force: true });
    const attempt = runner.run({ tool: 'btrfs', args: ['before\u0000after'] });
    await expect(attempt).rejects.toBeInstanceOf(CommandError);
    await expect(attempt).rejects.toMatchObject({ spawnFailed: true, kind: 'spawn' });
    await expect(attempt).rejects.toThrow(/NUL byte/);
    expect(existsSync(path.join(work, 'argv.json'))).toBe(false);
  });
});
