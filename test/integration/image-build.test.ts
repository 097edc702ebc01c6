/**
 * The Dockerfile builds and the image runs, without any registry: a base image equivalent to
 * node:20-bookworm-slim is made locally from Debian packages (mmdebstrap minbase bookworm) plus
 * this machine's Node 20, imported into a private dockerd, and the real Dockerfile is built on it
 * with `--build-arg BASE_IMAGE=...`. The build stage's `npm ci` and the runtime stage's `apt-get`
 * need the npm registry and deb.debian.org: the private dockerd has no bridge, so the build uses
 * `--network host`.
 *
 * The base rootfs is cached outside the clone, under /var/cache/docker-autogrow-image/<recipe hash>/,
 * so CI makes it once (about 4 minutes) and reuses it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestDockerd } from '../support/dockerd.js';
import { describeWith, prereqs, type Prereq } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const BASE_TAG = 'autogrow-base:node20-bookworm';
const IMAGE_TAG = 'docker-autogrow:test';
const CACHE_ROOT = '/var/cache/docker-autogrow-image';
const HOST_NODE = '/usr/bin/node';
const HOST_NPM_DIR = '/usr/lib/node_modules/npm';
const MIRROR = 'http://deb.debian.org/debian';

const mmdebstrap: Prereq = {
  name: 'mmdebstrap',
  ok: () => {
    try {
      accessSync('/usr/bin/mmdebstrap', constants.X_OK);
      accessSync(HOST_NODE, constants.X_OK);
      return existsSync(HOST_NPM_DIR);
    } catch {
      return false;
    }
  },
  fix: `apt-get install mmdebstrap (and Node 20 at ${HOST_NODE} with npm in ${HOST_NPM_DIR})`,
};

/**
 * The recipe: what node:20-bookworm-slim contains that the Dockerfile relies on. Node goes to
 * /usr/local/bin like the official image, npm to /usr/local/lib/node_modules, and a `node` user
 * with uid/gid 1000.
 */
const MMDEBSTRAP_ARGS = [
  '--variant=minbase',
  '--include=ca-certificates,libstdc++6',
  '--mode=root',
  '--format=tar',
  '--aptopt=Acquire::Retries "3"',
  `--customize-hook=cp ${HOST_NODE} "$1/usr/local/bin/node"`,
  `--customize-hook=mkdir -p "$1/usr/local/lib/node_modules" && cp -a ${HOST_NPM_DIR} "$1/usr/local/lib/node_modules/npm"`,
  '--customize-hook=ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm" && ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"',
  '--customize-hook=chroot "$1" groupadd --gid 1000 node && chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node',
];

async function hostNodeVersion(): Promise<string> {
  return (await execFileAsync(HOST_NODE, ['--version'])).stdout.trim();
}

/** Builds (or reuses) the base rootfs tarball; returns its path and whether it was built now. */
async function ensureBaseRootfs(): Promise<{ tarball: string; builtNow: boolean; seconds: number }> {
  const nodeVersion = await hostNodeVersion();
  const recipeHash = createHash('sha256')
    .update(JSON.stringify({ args: MMDEBSTRAP_ARGS, suite: 'bookworm', mirror: MIRROR, nodeVersion }))
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(CACHE_ROOT, recipeHash);
  const tarball = path.join(dir, 'rootfs.tar');
  if (existsSync(tarball)) return { tarball, builtNow: false, seconds: 0 };
  mkdirSync(dir, { recursive: true });
  const partial = `${tarball}.partial-${process.pid}`;
  const started = performance.now();
  try {
    await execFileAsync('/usr/bin/mmdebstrap', [...MMDEBSTRAP_ARGS, 'bookworm', partial, MIRROR], {
      timeout: 900_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
  renameSync(partial, tarball);
  return { tarball, builtNow: true, seconds: (performance.now() - started) / 1000 };
}

const LOCAL_CA_DIR = '/usr/local/share/ca-certificates';

/**
 * This machine reaches the npm registry through a TLS-intercepting egress proxy whose CA is
 * installed locally (LOCAL_CA_DIR). A build container does not inherit the host's trust store, so
 * the base gets those CAs in one extra layer, the way a site behind such a proxy would extend the
 * official image. Without local CAs the base is used as it is. The Dockerfile stays unchanged.
 */
async function addLocalCertificateAuthorities(dockerd: TestDockerd): Promise<string> {
  const certificates = existsSync(LOCAL_CA_DIR)
    ? readdirSync(LOCAL_CA_DIR).filter((file) => file.endsWith('.crt'))
    : [];
  if (certificates.length === 0) return BASE_TAG;
  const context = path.join(dockerd.baseDir, 'local-ca');
  mkdirSync(context, { recursive: true });
  for (const file of certificates) copyFileSync(path.join(LOCAL_CA_DIR, file), path.join(context, file));
  writeFileSync(
    path.join(context, 'Dockerfile'),
    [
      `FROM ${BASE_TAG}`,
      'COPY *.crt /usr/local/share/ca-certificates/',
      'RUN update-ca-certificates >/dev/null',
      'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
      '',
    ].join('\n'),
  );
  const tag = `${BASE_TAG}-localca`;
  await dockerd.cli(['build', '-q', '-t', tag, context], 600_000);
  return tag;
}

describeWith([prereqs.root, prereqs.dockerd, mmdebstrap], 'container image (Dockerfile)', () => {
  let dockerd: TestDockerd;
  let buildSeconds = 0;
  let baseImage = BASE_TAG;

  beforeAll(async () => {
    const base = await ensureBaseRootfs();
    console.info(
      base.builtNow
        ? `base rootfs made in ${base.seconds.toFixed(0)}s: ${base.tarball}`
        : `base rootfs reused: ${base.tarball}`,
    );
    dockerd = new TestDockerd();
    await dockerd.start();
    // `docker import` keeps no config: give the base what the official image declares.
    await execFileAsync(
      '/bin/sh',
      [
        '-c',
        `'${'/usr/bin/docker'}' -H '${dockerd.host}' import ` +
          `--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' ` +
          `--change 'CMD ["node"]' - '${BASE_TAG}' < '${base.tarball}'`,
      ],
      { timeout: 300_000 },
    );
    baseImage = await addLocalCertificateAuthorities(dockerd);
    const started = performance.now();
    await dockerd.cli(
      [
        'build',
        '--network',
        'host',
        '--build-arg',
        `BASE_IMAGE=${baseImage}`,
        '-t',
        IMAGE_TAG,
        '-f',
        path.join(REPO_ROOT, 'Dockerfile'),
        REPO_ROOT,
      ],
      1_800_000,
    );
    buildSeconds = (performance.now() - started) / 1000;
    console.info(`image built in ${buildSeconds.toFixed(0)}s`);
  }, 1_800_000);

  afterAll(async () => {
    if (!dockerd) return;
    // destroy() also unmounts what `--network host` builds leave below the daemon's directories
    await dockerd.destroy();
  }, 300_000);

  it('runs `<image> --version` and prints the package version', async () => {
    const version = (
      JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
    ).version;
    const out = await dockerd.cli(['run', '--rm', IMAGE_TAG, '--version']);
    expect(out.trim()).toBe(version);
  });

  it('validates its embedded configuration with `config check`', async () => {
    const out = await dockerd.cli(['run', '--rm', IMAGE_TAG, 'config', 'check']);
    expect(out).toMatch(/configuration OK/);
  });

  it('contains the storage tools the agent runs, and no build toolchain', async () => {
    const tools = [
      'dmsetup',
      'lvs',
      'lvextend',
      'xfs_growfs',
      'xfs_quota',
      'resize2fs',
      'btrfs',
      'findmnt',
      'blkid',
      'losetup',
      'nsenter',
      'thin_check',
    ];
    const out = await dockerd.cli([
      'run',
      '--rm',
      '--entrypoint',
      '/bin/sh',
      IMAGE_TAG,
      '-c',
      `for t in ${tools.join(' ')}; do command -v "$t" >/dev/null || echo "missing $t"; done; ` +
        'test -e /opt/docker-autogrow/node_modules/typescript && echo "dev dependency typescript present"; ' +
        'test -d /opt/docker-autogrow/src && echo "sources present"; id -u',
    ]);
    expect(out.trim()).toBe('0');
  });

  it('installs the tools at build time, runs root-owned code, and compiles as the unprivileged node user', async () => {
    const history = await dockerd.cli([
      'image',
      'history',
      '--no-trunc',
      '--format',
      '{{.CreatedBy}}',
      IMAGE_TAG,
    ]);
    expect(history).toMatch(/apt-get install/);
    const entrypoint = (
      await dockerd.cli(['image', 'inspect', '--format', '{{json .Config.Entrypoint}}', IMAGE_TAG])
    ).trim();
    expect(JSON.parse(entrypoint)).toEqual(['node', '/opt/docker-autogrow/dist/src/main.js']);
    // The code that runs as root is owned by root, not by the build user.
    const owner = await dockerd.cli([
      'run',
      '--rm',
      '--entrypoint',
      '/usr/bin/stat',
      IMAGE_TAG,
      '-c',
      '%u',
      '/opt/docker-autogrow/dist/src/main.js',
    ]);
    expect(owner.trim()).toBe('0');
    // The build stage (npm ci, tsc) runs as `node`; its layers are cached, so this is quick.
    await dockerd.cli(
      [
        'build',
        '--network',
        'host',
        '--build-arg',
        `BASE_IMAGE=${baseImage}`,
        '--target',
        'build',
        '-t',
        `${IMAGE_TAG}-build`,
        '-f',
        path.join(REPO_ROOT, 'Dockerfile'),
        REPO_ROOT,
      ],
      600_000,
    );
    const buildUser = (
      await dockerd.cli(['image', 'inspect', '--format', '{{.Config.User}}', `${IMAGE_TAG}-build`])
    ).trim();
    expect(buildUser).toBe('node');
  }, 900_000);
});
