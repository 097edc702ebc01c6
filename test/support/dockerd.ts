/** The private dockerd rig lives with the benchmarks (their build must not reach into test/). */
export * from '../../bench/lib/dockerd.js';
