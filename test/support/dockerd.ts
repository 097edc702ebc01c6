/** Moved to bench/lib/dockerd.ts (the benchmarks' own support code, which tests share); this path stays for tests. */
export * from '../../bench/lib/dockerd.js';
