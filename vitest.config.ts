import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // e2e tests share network namespaces and ports; one worker keeps a 2-core CI machine honest.
    fileParallelism: false,
    reporters: ['default'],
  },
});
