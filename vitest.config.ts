import { defineConfig } from 'vitest/config';

// Three tiers: unit (pure + fakes, fast), integration (real dockerd, btrfs, promtool: needs root),
// vm (real device-mapper and XFS quota inside a qemu guest). `npm test` runs all of them; the
// integration and vm tiers fail loudly in CI when their prerequisites are missing.
export default defineConfig({
  test: {
    // Real daemons, loop devices and VMs share 2 cores: one test file at a time keeps timings honest.
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'src/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'vm',
          include: ['test/vm/**/*.test.ts'],
          testTimeout: 1_800_000,
          hookTimeout: 1_800_000,
        },
      },
      // Tests that run INSIDE the qemu guest (started by test/vm/harness via `--project guest`); the
      // project exists only there, so a host `vitest run` never picks them up.
      ...(process.env.AUTOGROW_VM_GUEST === '1'
        ? [
            {
              test: {
                name: 'guest',
                include: ['test/guest/**/*.test.ts'],
                testTimeout: 900_000,
                hookTimeout: 900_000,
              },
            },
          ]
        : []),
    ],
  },
});
