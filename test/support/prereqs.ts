/**
 * Suites that need root, a real dockerd, btrfs, promtool or qemu declare their prerequisites here.
 * Locally a suite whose prerequisites are missing is skipped with a visible note; in CI
 * (`CI=true`) it fails instead, so CI can never pass by skipping the real tests.
 */
import { describe, it } from 'vitest';
import { executable } from './executable.js';

export { executable };

export interface Prereq {
  name: string;
  ok: () => boolean;
  fix: string;
}

export const prereqs = {
  root: { name: 'root', ok: () => process.getuid?.() === 0, fix: 'run the tests as root' },
  dockerd: {
    name: 'dockerd (Debian docker.io)',
    ok: () => executable('/usr/sbin/dockerd') && executable('/usr/bin/docker'),
    fix: 'apt-get install docker.io',
  },
  btrfs: {
    name: 'btrfs-progs',
    ok: () => executable('/usr/bin/btrfs') || executable('/bin/btrfs'),
    fix: 'apt-get install btrfs-progs',
  },
  busybox: {
    name: 'busybox-static',
    ok: () => executable('/bin/busybox'),
    fix: 'apt-get install busybox-static',
  },
  promtool: {
    name: 'promtool',
    ok: () => executable('/usr/bin/promtool'),
    fix: 'apt-get install prometheus',
  },
  prometheus: {
    name: 'prometheus',
    ok: () => executable('/usr/bin/prometheus'),
    fix: 'apt-get install prometheus',
  },
  qemu: {
    name: 'qemu-system-x86_64',
    ok: () => executable('/usr/bin/qemu-system-x86_64'),
    fix: 'apt-get install qemu-system-x86',
  },
} satisfies Record<string, Prereq>;

export const inCi = process.env.CI === 'true' || process.env.CI === '1';

export function missing(required: readonly Prereq[]): Prereq[] {
  return required.filter((prereq) => !prereq.ok());
}

/**
 * `describe` that runs when every prerequisite is present. Otherwise: in CI one failing test
 * naming what is missing and how to fix it; locally a skipped suite.
 */
export function describeWith(required: readonly Prereq[], name: string, body: () => void): void {
  const absent = missing(required);
  if (absent.length === 0) {
    describe(name, body);
    return;
  }
  const why = absent.map((prereq) => `${prereq.name} (${prereq.fix})`).join(', ');
  if (inCi) {
    describe(name, () => {
      it('has its prerequisites', () => {
        throw new Error(`prerequisites missing in CI: ${why}`);
      });
    });
  } else {
    describe.skip(`${name} [skipped: missing ${why}]`, body);
  }
}
