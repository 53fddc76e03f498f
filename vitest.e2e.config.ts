import { defineConfig } from "vitest/config";

/** Tier 3: `wrangler dev` on a free port, driven by stock y-websocket clients in Node. */
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.test.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 90_000,
    // One wrangler dev per file; files run one after another on a 2-core machine.
    fileParallelism: false,
  },
});
