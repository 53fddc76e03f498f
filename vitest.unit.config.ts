import { defineConfig } from "vitest/config";

/** Tier 1: the pure cores, in Node. */
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts", "test/sim/**/*.test.ts"],
    environment: "node",
  },
});
