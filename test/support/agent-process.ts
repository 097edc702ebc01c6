/** Moved to bench/lib/agent-process.ts (the benchmarks' own support code, which tests share); this path stays for tests. */
export * from '../../bench/lib/agent-process.js';
