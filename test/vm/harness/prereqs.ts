/**
 * What a host needs to boot the test VM. Use with test/support/prereqs.ts:
 * `describeWith(vmPrereqs, 'my vm suite', () => { ... })` skips locally without them and fails in CI.
 */
import { prereqs, type Prereq, executable } from '../../support/prereqs.js';

const imageTools: Prereq = {
  name: 'VM image build tools (mmdebstrap, cpio, kmod)',
  ok: () =>
    executable('/usr/bin/mmdebstrap') && executable('/usr/bin/cpio') && executable('/usr/sbin/depmod'),
  fix: 'apt-get install mmdebstrap cpio kmod',
};

export const vmPrereqs: readonly Prereq[] = [prereqs.root, prereqs.qemu, prereqs.busybox, imageTools];
