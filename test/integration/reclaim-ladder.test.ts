/**
 * The reclaim ladder against a real, private dockerd (Debian docker.io 20.10, BuildKit built in):
 * build cache made by a real BuildKit build and dangling images made by re-importing a tag are
 * freed in the ladder's order; a dry run frees nothing and lists the same items the real run then
 * removes; an image a (stopped) container was created from is never removed, and Docker refuses
 * it too (the second safety net bites); a cron schedule fires for real through the node-cron
 * adapter and removes what appeared since.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
import { silentLogger } from '../../src/log/logger.js';
import { runLadder, type ReclaimReport } from '../../src/reclaim/ladder.js';
import { Reclaimer } from '../../src/reclaim/reclaimer.js';
import type { ReclaimDockerApi, ReclaimRung } from '../../src/contracts/reclaim.js';
import { configSchema } from '../../src/config/schema.js';
import { statfsUsage } from '../../src/storage/filesystem.js';
import { DOCKER_CLI, TestDockerd, busyboxRootfsTarball } from '../support/dockerd.js';
import { describeWith, prereqs } from '../support/prereqs.js';
import { Writable } from 'node:stream';
import { buildProgram } from '../../src/cli/program.js';

/** Runs the CLI in-process (the same program src/main.ts runs); returns what it printed. */
async function runCli(args: string[]): Promise<string> {
  let out = '';
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out += chunk.toString('utf8');
      done();
    },
  });
  const program = buildProgram({ stdout, stderr: process.stderr, env: {} });
  await program.parseAsync(['node', 'docker-autogrow', ...args]);
  return out;
}

const execFileAsync = promisify(execFile);
const BASE = 'autogrow-busybox:test';
const LADDER: ReclaimRung[] = [{ kind: 'build-cache' }, { kind: 'dangling-images' }];

/** A BuildKit build through the Engine API (`version=2`, the context as a tar body): no buildx needed. */
function buildKitBuild(socketPath: string, contextTar: Buffer, tag: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        socketPath,
        method: 'POST',
        path: `/build?version=2&t=${encodeURIComponent(tag)}&buildid=${Date.now()}`,
        headers: { 'Content-Type': 'application/x-tar', 'Content-Length': contextTar.length },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((response.statusCode ?? 500) >= 300 || /"error"/.test(text))
            reject(new Error(`build ${tag}: HTTP ${response.statusCode} ${text.slice(-500)}`));
          else resolve(text);
        });
      },
    );
    request.on('error', reject);
    request.end(contextTar);
  });
}

async function contextTar(dir: string, payloadBytes: number, seed: string): Promise<Buffer> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const payload = Buffer.alloc(payloadBytes);
  for (let i = 0; i < payload.length; i += 1) payload[i] = (i * 31 + seed.charCodeAt(i % seed.length)) & 0xff;
  writeFileSync(path.join(dir, 'payload'), payload);
  writeFileSync(path.join(dir, 'Dockerfile'), `FROM ${BASE}\nCOPY payload /payload\n`);
  const tar = path.join(dir, '..', `${path.basename(dir)}.tar`);
  await execFileAsync('/bin/tar', ['-C', dir, '-cf', tar, '.']);
  return readFileSync(tar);
}

/** Wraps the real client and records the order of its removals. */
function recording(client: DockerClient, calls: string[]): ReclaimDockerApi {
  return {
    listImagesForReclaim: () => client.listImagesForReclaim(),
    listContainersForReclaim: () => client.listContainersForReclaim(),
    listBuildCache: () => client.listBuildCache(),
    listVolumesForReclaim: () => client.listVolumesForReclaim(),
    pruneBuildCache: async (options) => {
      calls.push('prune build cache');
      return client.pruneBuildCache(options);
    },
    removeImage: async (reference) => {
      calls.push(`remove image ${reference}`);
      return client.removeImage(reference);
    },
    removeContainer: async (id) => {
      calls.push(`remove container ${id}`);
      return client.removeContainer(id);
    },
    removeVolume: async (name) => {
      calls.push(`remove volume ${name}`);
      return client.removeVolume(name);
    },
  };
}

const ids = (report: ReclaimReport, index: number) =>
  report.rungs[index]!.items.map((item) => item.id).sort();

describeWith([prereqs.root, prereqs.dockerd, prereqs.busybox], 'reclaim ladder on a real dockerd', () => {
  let dockerd: TestDockerd;
  let client: DockerClient;
  let work: string;
  let inUseImageId: string;

  const docker = (args: string[]) => dockerd.cli(args, 120_000);
  /** `docker import` of the busybox rootfs as `tag` with a label: a new image id each time. */
  const importAs = async (tag: string, label: string) => {
    const tarball = await busyboxRootfsTarball();
    const { stdout } = await execFileAsync(
      '/bin/sh',
      ['-c', `'${DOCKER_CLI}' -H '${dockerd.host}' import -c 'LABEL n=${label}' - '${tag}' < '${tarball}'`],
      { env: { ...process.env, DOCKER_CONFIG: path.join(dockerd.baseDir, 'cli-config') } },
    );
    return stdout.trim();
  };
  const imageExists = async (id: string) =>
    docker(['image', 'inspect', id]).then(
      () => true,
      () => false,
    );

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'agrcl-'));
    dockerd = new TestDockerd();
    await dockerd.start();
    await dockerd.ensureBusyboxImage(BASE);
    client = new DockerClient({ socketPath: dockerd.socketPath, timeoutMs: 120_000 });
    // build cache: two BuildKit builds with different contexts
    await buildKitBuild(
      dockerd.socketPath,
      await contextTar(path.join(work, 'a'), 2_000_000, 'a'),
      'built:a',
    );
    await buildKitBuild(
      dockerd.socketPath,
      await contextTar(path.join(work, 'b'), 3_000_000, 'b'),
      'built:b',
    );
    // dangling images: a tag imported twice leaves the first untagged
    await importAs('churn:1', 'one');
    await importAs('churn:1', 'two');
    await importAs('churn:1', 'three');
    // an image in use: a stopped container created from it, then its tag moved away (dangling, used)
    inUseImageId = await importAs('used:1', 'used');
    await docker(['create', '--name', 'holder', '--network', 'none', 'used:1', 'true']);
    await importAs('used:1', 'moved');
  }, 300_000);

  afterAll(async () => {
    await dockerd?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('a dry run frees nothing and lists what the real run then removes, rung by rung in order', async () => {
    const statfs = statfsUsage;
    const deps = (docker: ReclaimDockerApi) => ({
      docker,
      dataRoot: dockerd.dataRoot,
      statfs,
      logger: silentLogger(),
      nowMs: () => Date.now(),
    });
    const options = { rungs: LADDER, trigger: 'manual' as const, why: 'test', stopBelowRatio: null };
    const imagesBefore = (await docker(['images', '-aq', '--no-trunc'])).trim().split('\n').sort();
    const cacheBefore = (await client.listBuildCache()).map((record) => record.id).sort();
    expect(cacheBefore.length).toBeGreaterThanOrEqual(4);

    const calls: string[] = [];
    const dry = await runLadder(deps(recording(client, calls)), { ...options, dryRun: true });
    expect(dry.result).toBe('planned');
    expect(calls).toEqual([]);
    expect((await docker(['images', '-aq', '--no-trunc'])).trim().split('\n').sort()).toEqual(imagesBefore);
    expect((await client.listBuildCache()).map((record) => record.id).sort()).toEqual(cacheBefore);
    expect(dry.rungs.map((rung) => rung.kind)).toEqual(['build-cache', 'dangling-images']);
    expect(ids(dry, 0)).toEqual(cacheBefore); // nothing builds now: every record is unused
    expect(dry.rungs[1]!.items).toHaveLength(2); // churn:1 one and two
    expect(ids(dry, 1)).not.toContain(inUseImageId);
    console.log(
      `reclaim dry run: build cache ${dry.rungs[0]!.items.length} records ${dry.rungs[0]!.itemBytes} B, dangling images ${dry.rungs[1]!.items.length} (${dry.rungs[1]!.itemBytes} B)`,
    );

    const real = await runLadder(deps(recording(client, calls)), { ...options, dryRun: false });
    expect(real.result).toBe('freed');
    expect(real.error).toBeNull();
    expect(ids(real, 0)).toEqual(ids(dry, 0));
    expect(ids(real, 1)).toEqual(ids(dry, 1));
    // the ladder's order: the whole build-cache rung before any image removal
    expect(calls[0]).toBe('prune build cache');
    expect(calls.slice(1).every((call) => call.startsWith('remove image sha256:'))).toBe(true);
    expect(calls).toHaveLength(3);
    expect(await client.listBuildCache()).toEqual([]);
    for (const id of ids(dry, 1)) expect(await imageExists(id)).toBe(false);
    expect(real.rungs[0]!.itemBytes).toBeGreaterThan(5_000_000);
    expect(real.rungs[0]!.freedBytes).not.toBeNull();
    console.log(
      `reclaim real run: ${real.durationMs} ms, freed (statfs) ${real.rungs.map((rung) => `${rung.kind} ${rung.freedBytes} B`).join(', ')}`,
    );

    // never the image in use: not selected, and Docker refuses it without force (the second net)
    expect(await imageExists(inUseImageId)).toBe(true);
    await expect(client.removeImage(inUseImageId)).rejects.toThrow(/conflict|being used|409/i);
    expect(await imageExists(inUseImageId)).toBe(true);
    // tagged images stay (built:a, built:b, churn:1, used:1, the base), and the untagged one in use
    const tags = (await docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).trim().split('\n').sort();
    expect(tags).toEqual([
      '<none>:<none>',
      'autogrow-busybox:test',
      'built:a',
      'built:b',
      'churn:1',
      'used:1',
    ]);
    // a second run finds nothing
    const again = await runLadder(deps(client), { ...options, dryRun: false });
    expect(again.result).toBe('nothing');
  }, 300_000);

  it('a cron schedule fires for real and climbs the ladder', async () => {
    const danglingId = await importAs('churn:1', 'four'); // makes "three" dangling
    const three = (await client.listImagesForReclaim()).filter((image) => image.repoTags.length === 0);
    expect(three.map((image) => image.id)).not.toContain(danglingId);
    expect(three.length).toBeGreaterThanOrEqual(2); // "three" and the in-use one
    const reports: ReclaimReport[] = [];
    const settings = configSchema.parse({
      reclaim: { enabled: true, schedules: ['*/2 * * * * *'], ladder: [{ kind: 'dangling-images' }] },
    }).reclaim;
    const reclaimer = new Reclaimer({
      settings,
      docker: client,
      dataRoot: dockerd.dataRoot,
      dryRun: false,
      logger: silentLogger(),
      clock: { nowMs: () => Date.now() },
      onReport: (report) => reports.push(report),
    });
    const startedAtMs = Date.now();
    reclaimer.start();
    const next = reclaimer.nextScheduledRunsMs()[0]!;
    expect(next).toBeGreaterThan(startedAtMs);
    expect(next).toBeLessThanOrEqual(startedAtMs + 2_100);
    while (reports.length === 0 && Date.now() - startedAtMs < 20_000)
      await new Promise((resolve) => setTimeout(resolve, 100));
    await reclaimer.stop();
    const count = reports.length;
    expect(count).toBeGreaterThanOrEqual(1);
    const first = reports[0]!;
    expect(first.trigger).toBe('schedule');
    expect(first.result).toBe('freed');
    expect(first.rungs[0]!.items.map((item) => item.id)).not.toContain(inUseImageId);
    expect(await imageExists(inUseImageId)).toBe(true);
    console.log(
      `reclaim cron: first run ${first.startedAtMs - startedAtMs} ms after start, removed ${first.rungs[0]!.items.length}`,
    );
    // stopped: no further run
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(reports).toHaveLength(count);
  }, 120_000);

  it('the reclaim command lists with --dry-run, then removes the same under the agent lock (no agent runs)', async () => {
    const holderOfFour = (await client.listImagesForReclaim()).find((image) =>
      image.repoTags.includes('churn:1'),
    )!;
    await importAs('churn:1', 'five'); // "four" becomes dangling
    const state = mkdtempSync(path.join(tmpdir(), 'agrcs-'));
    const file = path.join(state, 'config.yaml');
    writeFileSync(
      file,
      [
        'docker:',
        `  socketPath: ${dockerd.socketPath}`,
        'journal:',
        `  path: ${state}/journal.jsonl`,
        'log:',
        '  level: warn',
        'reclaim:',
        '  ladder:',
        '    - kind: dangling-images',
        '',
      ].join('\n'),
    );
    const dry = JSON.parse(await runCli(['-c', file, 'reclaim', '--dry-run', '--json'])) as ReclaimReport;
    expect(dry.dryRun).toBe(true);
    expect(dry.rungs[0]!.items.map((item) => item.id)).toEqual([holderOfFour.id]);
    expect(await imageExists(holderOfFour.id)).toBe(true);
    const text = await runCli(['-c', file, 'reclaim']);
    expect(text).toContain('dangling-images: removed 1');
    expect(text).toContain(holderOfFour.id.slice(0, 19));
    expect(await imageExists(holderOfFour.id)).toBe(false);
    expect(await imageExists(inUseImageId)).toBe(true);
    rmSync(state, { recursive: true, force: true });
  }, 120_000);
});
