/**
 * What a host needs to boot the test VM. Use with test/support/prereqs.ts:
 * `describeWith(vmPrereqs, 'my vm suite', () => { ... })` skips locally without them and fails in CI.
 */
import { accessSync, constants } from 'node:fs';
import { prereqs, type Prereq } from '../../support/prereqs.js';

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const imageTools: Prereq = {
  name: 'VM image build tools (mmdebstrap, cpio, kmod)',
  ok: () =>
    executable('/usr/bin/mmdebstrap') && executable('/usr/bin/cpio') && executable('/usr/sbin/depmod'),
  fix: 'apt-get install mmdebstrap cpio kmod',
};

export const vmPrereqs: readonly Prereq[] = [prereqs.root, prereqs.qemu, prereqs.busybox, imageTools];
