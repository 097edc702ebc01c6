/** Moved to bench/lib/repo-root.ts (the benchmarks' own support code, which tests share); this path stays for tests. */
export * from '../../bench/lib/repo-root.js';
