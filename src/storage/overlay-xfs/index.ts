export { buildLimitCommand, createOverlayXfsBackend, type OverlayXfsBackendOptions } from './backend.js';
