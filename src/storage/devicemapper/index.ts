/**
 * The devicemapper backend: Docker on a thin pool (direct-lvm or loop-lvm).
 *
 * - observe: three dmsetup commands per pass whatever the container count (`table`, `status
 *   --noflush`, `info -c`), statfs per container (no process) and one read of /proc/self/mountinfo.
 * - grow: the manual procedure made safe (lock, read live table, journal, load, resume, re-read,
 *   grow the filesystem, verify with statfs, patch Docker's metadata file, remember the grown size).
 * - persistence: a stopped grown container gets its device re-created at the grown size, because
 *   dockerd re-activates it at the size it cached in memory (docs/devicemapper.md).
 * - recover: replays the write-ahead journal of an agent killed mid-grow.
 * - growPool: lvextend (direct-lvm) or sparse file + losetup -c + pool reload (loop-lvm).
 *
 * One concern per file, as in ../btrfs/: context.ts (shared state and the one dmsetup runner),
 * snapshot.ts (kernel snapshot), observe.ts, device-grow.ts (grow state machine), recovery.ts,
 * persistence.ts (pure rules, the hold's format) and holds.ts (their effects), pool-grow.ts,
 * doctor.ts; backend.ts puts them together.
 */
export * from './parse.js';
export * from './persistence.js';
export * from './types.js';
export { createDevicemapperBackend } from './backend.js';
export { bytesToAlignedSectors } from './device-grow.js';
export { lvsPoolArgs, vgsFreeArgs } from './pool-grow.js';
export { isCommandError } from '../../exec/runner.js';
