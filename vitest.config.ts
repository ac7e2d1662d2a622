import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // An e2e journey (bundle, two installs over SSH with real inference) takes about a minute
    // on a quiet 2-core machine; the margin is for a loaded one.
    testTimeout: 240_000,
    hookTimeout: 300_000,
    // e2e tests share network namespaces and ports; one worker keeps a 2-core CI machine honest.
    fileParallelism: false,
    reporters: ['default'],
  },
});
