// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'child_process', message: 'Run external programs through src/exec/runner.ts.' },
            { name: 'node:child_process', message: 'Run external programs through src/exec/runner.ts.' },
          ],
        },
      ],
    },
  },
  {
    // A daemon full of promises: a promise nobody awaits or catches is a crash (unhandled
    // rejection) or a lost failure waiting to happen; one passed where a callback returns void
    // (event handlers, timers) escapes every try/catch. Type-aware, so only for typed sources.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.check.json' } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    // The policy core is a pure function of (config, observations, history, now): no clock, no I/O.
    files: ['src/policy/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']",
          message: 'Pass `now` in.',
        },
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Pass `now` in.' },
      ],
      'no-restricted-imports': [
        'error',
        { patterns: ['node:*', 'fs', 'child_process', 'execa', 'dockerode'] },
      ],
    },
  },
  {
    // The runner adapter is the one place that may spawn processes; tests may use them to prove injection safety,
    // and the benchmarks and the soak drive real daemons and the built agent with them.
    files: ['src/exec/runner.ts', 'test/**/*.ts', 'bench/**/*.ts', 'soak/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
