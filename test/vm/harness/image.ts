/**
 * The VM image (Debian kernel + minbase bookworm root + initramfs), built by test/vm/build-image.sh and
 * cached outside the checkout under /var/cache/docker-autogrow-vm/<recipe-hash>/. The shell script is
 * the one source of truth for the recipe and its hash (CI calls it directly); this module runs it and
 * reports whether it built or reused.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the checkout (the directory holding package.json). */
export const CHECKOUT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BUILD_IMAGE_SCRIPT = path.join(CHECKOUT_DIR, 'test', 'vm', 'build-image.sh');

export interface VmImage {
  /** Directory with vmlinuz, initrd.gz, root.img, packages.txt, kernel.txt. */
  dir: string;
  /** True when this call built the image; false when a cached one was reused. */
  built: boolean;
  /** Wall time of this call (build, or the cache check when reused). */
  durationMs: number;
}

export const IMAGE_FILES = ['vmlinuz', 'initrd.gz', 'root.img'] as const;

const BUILD_TIMEOUT_MS = 20 * 60_000;
let cached: Promise<VmImage> | null = null;

/**
 * Builds the image unless a complete one for the current recipe exists. One call per process does
 * the work; later calls return the same result. Concurrent processes serialise on a lock file in the
 * script, so two test runs never build the same image twice.
 */
export function ensureVmImage(): Promise<VmImage> {
  cached ??= runImageBuild().catch((error: unknown) => {
    cached = null; // let a later call retry
    throw error;
  });
  return cached;
}

/** Runs build-image.sh now (no per-process memo): builds, or reuses the cached image and says so. */
export async function runImageBuild(): Promise<VmImage> {
  const startedAt = Date.now();
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(BUILD_IMAGE_SCRIPT, [], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), BUILD_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(text);
      else reject(new Error(`build-image.sh failed (code ${code}, signal ${signal}):\n${text.slice(-4000)}`));
    });
  });
  const summary = /^AUTOGROW_VM_IMAGE=(?<dir>\S+) built=(?<built>[01]) /m.exec(output);
  if (!summary?.groups) throw new Error(`build-image.sh printed no summary line:\n${output.slice(-2000)}`);
  const dir = summary.groups.dir ?? '';
  for (const file of IMAGE_FILES) {
    if (!existsSync(path.join(dir, file))) throw new Error(`VM image ${dir} lacks ${file}`);
  }
  return { dir, built: summary.groups.built === '1', durationMs: Date.now() - startedAt };
}
