import { defineConfig } from "vitest/config";

/**
 * The demo page in real headless Chromium (playwright-core, the system's browser): Node drives
 * the browser against `wrangler dev` on a free port. `npm run test:browser` builds the page first.
 */
export default defineConfig({
  test: {
    include: ["test/browser/**/*.test.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // One wrangler dev and one browser per file; files run one after another on a 2-core machine.
    fileParallelism: false,
  },
});
