/** Makes the soak rig of a backend by name (soak/rigs/types.ts describes the seam). */
import { BtrfsRig } from './btrfs.js';
import { DevicemapperRig } from './devicemapper.js';
import { OverlayXfsRig } from './overlay-xfs.js';
import type { BackendName, RigOptions, SoakRig } from './types.js';

export { BACKENDS, type BackendName, type RigContainer, type SoakRig } from './types.js';

export function createRig(backend: BackendName, options: RigOptions): SoakRig {
  switch (backend) {
    case 'btrfs':
      return new BtrfsRig(options);
    case 'overlay-xfs':
      return new OverlayXfsRig(options);
    case 'devicemapper':
      return new DevicemapperRig('direct-lvm', options);
    case 'devicemapper-loop':
      return new DevicemapperRig('loop-lvm', options);
  }
}
