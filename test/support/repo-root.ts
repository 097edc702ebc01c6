/** The repository root finder lives with the benchmarks (their build must not reach into test/). */
export { REPO_ROOT } from '../../bench/lib/repo-root.js';
