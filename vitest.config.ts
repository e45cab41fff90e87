import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // expect.poll gives up after 1 s by default: on the 2-core CI machine under the whole suite's
    // load, a state another part reaches in a few ms locally can take longer than that. A poll
    // that is met returns at once, so the bound costs only failing tests time.
    expect: { poll: { timeout: 10_000 } },
  },
});
