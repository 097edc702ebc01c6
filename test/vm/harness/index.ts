/**
 * The real-kernel VM harness (see docs/vm.md). Host side: ensureVmImage() builds or reuses the cached
 * image; runInVm() boots one fresh VM per call. Guest side (tests under test/guest/): guest.ts.
 */
export { CHECKOUT_DIR, ensureVmImage, runImageBuild, type VmImage } from './image.js';
export {
  ARTIFACTS_ROOT,
  DEFAULT_SCRATCH_SIZE_BYTES,
  DEFAULT_VM_TIMEOUT_MS,
  VM_ENVIRONMENTS,
  assertVmRunPassed,
  consoleTail,
  runInVm,
  type VmEnvironment,
  type VmRunOptions,
  type VmRunResult,
} from './run.js';
export { vmPrereqs } from './prereqs.js';
