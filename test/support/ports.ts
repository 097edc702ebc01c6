/** The free-port finder lives with the benchmarks (the soak and bench builds must not reach into test/). */
export { freePort } from '../../bench/lib/ports.js';
