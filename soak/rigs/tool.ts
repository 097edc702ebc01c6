/**
 * How a soak rig runs its storage tools (mkfs, mount, fallocate, btrfs, xfs_quota, ...): the
 * project's runner pattern (src/exec/runner.ts) for code that is not the agent: argument arrays
 * (never a shell), absolute binaries, `LC_ALL=C` (tool output is parsed), a timeout per call and an
 * error that names the command and its stderr. The agent's own runner is not used because its tool
 * list is the agent's (no mkfs, mount or fallocate), and the rig must not widen it.
 */
import { execFile } from 'node:child_process';
import { parseMountInfo } from '../../src/storage/filesystem.js';

/** The rigs' tools, absolute (Debian, merged /usr: the same paths on the host and in the guest). */
export const RIG_TOOLS = {
  btrfs: '/usr/bin/btrfs',
  dd: '/usr/bin/dd',
  dmsetup: '/usr/sbin/dmsetup',
  fallocate: '/usr/bin/fallocate',
  losetup: '/usr/sbin/losetup',
  /** LVM's one binary; its commands (pvcreate, lvcreate, ...) are its first argument */
  lvm: '/usr/sbin/lvm',
  mkfsXfs: '/usr/sbin/mkfs.xfs',
  mount: '/usr/bin/mount',
  umount: '/usr/bin/umount',
  truncate: '/usr/bin/truncate',
  udevadm: '/usr/bin/udevadm',
  xfsIo: '/usr/sbin/xfs_io',
  xfsQuota: '/usr/sbin/xfs_quota',
} as const;

const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** How a rig runs a tool (a fake in unit tests). */
export type ToolRun = (binary: string, args: readonly string[], timeoutMs: number) => Promise<string>;

/** Runs `binary args` and returns its stdout; rejects on a non-zero exit, a signal or the timeout. */
export function runTool(binary: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      [...args],
      {
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: MAX_OUTPUT_BYTES,
        encoding: 'utf8',
        env: { LC_ALL: 'C', LANG: 'C', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        const why = error.killed ? `killed after ${timeoutMs} ms` : `failed (${error.code ?? error.signal})`;
        reject(
          new Error(`${binary} ${args.join(' ')} ${why}: ${(stderr || stdout || error.message).trim()}`),
        );
      },
    );
  });
}

/**
 * Mount points at or below `dir` in a mountinfo text (read by the agent's parser), deepest
 * first, the order they unmount in. dockerd leaves mounts there when it stops (seen in the guest,
 * Debian's dockerd 20.10 on devicemapper: the data root bind-mounted onto itself, and the devices
 * of held containers under `devicemapper/mnt/`), and the soak's work dir cannot be removed while
 * they are there.
 */
export function mountPointsAtOrBelow(dir: string, mountinfo: string): string[] {
  const root = dir.replace(/\/+$/, '');
  return parseMountInfo(mountinfo)
    .map((entry) => entry.mountPoint)
    .filter((mountPoint) => mountPoint === root || mountPoint.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
}
