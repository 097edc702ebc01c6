/** Moved to bench/lib/dm-lines.ts (the benchmarks' own support code, which tests share); this path stays for tests. */
export * from '../../bench/lib/dm-lines.js';
