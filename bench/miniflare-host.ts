// Halo's Worker and Durable Objects in workerd through Miniflare's API, with no dev proxy in
// front: the bundle is what `wrangler deploy --dry-run` builds (so it is the deployed code), and
// Miniflare runs it with SQLite-backed Durable Objects, as `wrangler dev` does. `wrangler dev`
// puts a second workerd (its ProxyWorker, which holds requests while code reloads) between every
// client and the Worker; a benchmark wants neither that hop nor its CPU in the figures.
//
//   node --import tsx bench/miniflare-host.ts <port> <bundle dir> <persist dir> [HALO_CONFIG JSON]

import { join } from "node:path";
import { Miniflare } from "miniflare";

const [portArg, bundleDir, persistDir, config] = process.argv.slice(2);
if (!portArg || !bundleDir || !persistDir)
  throw new Error("usage: <port> <bundle dir> <persist dir> [config]");

const mf = new Miniflare({
  host: "127.0.0.1",
  port: Number(portArg),
  modules: true,
  modulesRules: [{ type: "ESModule", include: ["**/*.js"] }],
  modulesRoot: bundleDir,
  scriptPath: join(bundleDir, "worker.js"),
  compatibilityDate: "2026-04-20",
  // Halo's classes, or another script's (bench/workerd-relay) as JSON: { binding: className }.
  durableObjects: Object.fromEntries(
    Object.entries(
      process.env.HALO_BENCH_DURABLE_OBJECTS
        ? (JSON.parse(process.env.HALO_BENCH_DURABLE_OBJECTS) as Record<string, string>)
        : { SHARD: "ShardDurableObject", DIRECTORY: "DirectoryDurableObject" },
    ).map(([binding, className]) => [binding, { className, useSQLite: true }]),
  ),
  durableObjectsPersist: persistDir,
  // bench/cpu-profile.ts profiles the isolate through this port.
  ...(process.env.HALO_INSPECTOR_PORT
    ? { inspectorPort: Number(process.env.HALO_INSPECTOR_PORT) }
    : {}),
  bindings: {
    ...(config ? { HALO_CONFIG: config } : {}),
    ...(process.env.HALO_ADMIN_TOKEN ? { HALO_ADMIN_TOKEN: process.env.HALO_ADMIN_TOKEN } : {}),
  },
});
await mf.ready;
console.log(`halo (miniflare) listening on 127.0.0.1:${portArg}`);
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
