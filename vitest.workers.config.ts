import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/**
 * Tier 2: the real Worker and Durable Objects inside workerd, with real SQLite storage.
 * @cloudflare/vitest-pool-workers 0.23 rather than its successor @cloudflare/vitest-plugin:
 * the plugin requires Node 22, and these machines run Node 20.
 */
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // Small limits so compaction, row splitting and unloading happen within a test.
        bindings: {
          // A test-only HS256 secret: test/workers/tokens.ts signs with it.
          HALO_TOKEN_SECRET: "workers-test-secret-not-for-production",
          // The fuzz test's budget: small in CI, larger with `npm run fuzz` (FUZZ_SEED replays a run).
          FUZZ_RUNS: process.env.FUZZ_RUNS ?? "60",
          FUZZ_TIME_LIMIT_MS: process.env.FUZZ_TIME_LIMIT_MS ?? "20000",
          // CI replays one seed, so a red run is a regression, not a new finding; `npm run fuzz`
          // (which sets FUZZ_RUNS) explores from a random seed.
          FUZZ_SEED: process.env.FUZZ_SEED ?? (process.env.FUZZ_RUNS ? "" : "3234814"),
          HALO_CONFIG: {
            environment: "development",
            allowRegionOverride: true,
            defaultRegion: "wnam",
            shards: { wnam: 4, weur: 4, apac: 2 },
            auth: { anonymous: true },
            // Short graces for the rooms whose tests wait for one to end; a "large" room is one
            // of more than 3 members here, so coalescing can be tested with a few clients.
            presence: {
              graceByRoom: [{ pattern: "grace-*", graceMs: 400 }],
              coalesceAboveMembers: 3,
              coalesceWindowMs: 100,
            },
            // A fast gossip rhythm, so failure detection plays out within a test (membership.test.ts).
            membership: {
              gossipIntervalMs: 200,
              suspectAfterMs: 1000,
              suspicionMinMs: 600,
              suspicionMaxMs: 2000,
              ackTimeoutMs: 400,
              cacheMs: 100,
              loadReportMs: 200,
              faultInjection: true,
            },
            // Replication at test speed: anti-entropy twice a second, idle replicas leave after 1 s.
            replication: {
              batchMs: 10,
              antiEntropyMs: 500,
              idleLeaveMs: 1000,
              peerExpiryMs: 1500,
              rpcTimeoutMs: 1000,
              queryTimeoutMs: 500,
            },
            // A shard with more than 6 sockets is hot (the table names it); moves retry fast.
            rebalance: {
              hotConnections: 6,
              handOffTimeoutMs: 1000,
              retryMs: 500,
              movedGraceMs: 1000,
            },
            limits: {
              compactAfterUpdates: 20,
              compactAfterBytes: 65536,
              maxRowBytes: 4096,
              maxFrameBytes: 262144,
              maxRoomsInMemory: 3,
              // Small enough for test/workers/limits.test.ts to reach within a test.
              maxConnectionsPerRoom: 8,
              messagesPerSecond: 50,
              messageBurst: 100,
              maxDocumentBytes: 131072,
              // Every anonymous SELF.fetch shares one client key (no cf-connecting-ip) and some
              // tests poll REST; the REST limit test uses its own, tight configuration.
              restRequestsPerSecond: 10000,
              restBurst: 10000,
            },
          },
        },
      },
    }),
  ],
  test: {
    include: ["test/workers/**/*.test.ts"],
    // Region directories gossip on their own alarms (every 200 ms here) until the runtime
    // stops; one that logs or loads a module while the pool tears a file's runtime down makes
    // the pool report "Closing rpc while ... was pending". Only that teardown race is ignored.
    onUnhandledError(error) {
      if (error.name === "EnvironmentTeardownError" && /Closing rpc while/.test(error.message)) {
        return false;
      }
    },
  },
});
