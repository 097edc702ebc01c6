/** Moved to bench/lib/executable.ts (the benchmarks' own support code, which tests share); this path stays for tests. */
export * from '../../bench/lib/executable.js';
