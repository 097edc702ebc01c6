export {
  buildLimitCommand,
  createOverlayXfsBackend,
  isProjectView,
  type OverlayXfsBackendOptions,
} from './backend.js';
