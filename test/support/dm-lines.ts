/** The dmsetup line builders live with the benchmarks (their build must not reach into test/). */
export * from '../../bench/lib/dm-lines.js';
