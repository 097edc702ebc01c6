export { createBtrfsBackend, BtrfsQuotasDisabledError, type BtrfsBackendOptions } from './backend.js';
