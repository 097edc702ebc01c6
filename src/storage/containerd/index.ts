export {
  CONTAINERD_NO_LIMIT,
  DEFAULT_WALK_ENTRY_BUDGET,
  createContainerdBackend,
  type ContainerdBackendOptions,
} from './backend.js';
