/** The prerequisite check lives with the benchmarks (their build must not reach into test/). */
export { executable } from '../../bench/lib/executable.js';
