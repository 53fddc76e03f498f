import { Hono } from "hono";
import type { HaloConfig } from "../config/config-schema";
import type { Region } from "../config/regions";
import { faultPlanSchema, NO_FAULTS } from "../membership/fault-plan";
import { membershipViewSchema } from "../membership/membership-schema";
import type { RegionEntry } from "../membership/region-entry";
import type { RebalanceReport } from "../rebalance/handoff-schema";
import { layoutsFromEntries } from "../routing/shard-layout";
import { allShards, shardFor, shardsOf } from "../routing/shard-router";
import { withTimeout } from "../util/with-timeout";
import { assertAdmin } from "./admin-auth";
import { resizeRequestSchema } from "./api-schemas";
import type { AppEnv } from "./app-env";
import { directoryStub } from "./directory-stub";
import { HttpError } from "./errors";
import { parseJsonBody } from "./query-params";
import { configuredRegion, parseRoomName, resolveRegion } from "./room-request";
import { shardStub } from "./shard-stub";

/**
 * Operator endpoints, mounted at `/v1/admin`: shard figures, a room's storage internals,
 * draining regions, and (development only) fault injection between directories. Every route
 * needs the admin token; with none configured they are all off.
 */
export const adminRoutes = new Hono<AppEnv>();

adminRoutes.use("*", async (c, next) => {
  await assertAdmin(c.req.header("authorization"), c.env.HALO_ADMIN_TOKEN);
  await next();
});

/** The table as each region's own directory holds its entry (the source of its shard layout). */
async function ownLayouts(c: { env: AppEnv["Bindings"]; var: { config: HaloConfig } }) {
  const config = c.var.config;
  const views = await Promise.all(
    config.regions.map(async (region) => {
      try {
        const view = await withTimeout(
          directoryStub(c.env.DIRECTORY, region).view(region),
          config.membership.ackTimeoutMs,
          `directory ${region}`,
        );
        return view.entries.filter((entry) => entry.region === region);
      } catch {
        return []; // configuration's layout stands for a directory that does not answer
      }
    }),
  );
  return layoutsFromEntries(membershipViewSchema.shape.entries.parse(views.flat()));
}

/**
 * Every shard (the current count's, and any an earlier larger count still uses) with its
 * loaded rooms, open sockets, and the load it last reported to its directory.
 */
adminRoutes.get("/shards", async (c) => {
  const config = c.var.config;
  const layouts = await ownLayouts(c);
  const reported = new Map(
    await Promise.all(
      config.regions.map(async (region) => {
        const loads = await directoryStub(c.env.DIRECTORY, region)
          .shardLoads(region)
          .catch(() => []);
        return [region, loads] as const;
      }),
    ),
  );
  const shards = await Promise.all(
    allShards(config, layouts).map(async (address) => {
      const layout = layouts(address.region);
      return {
        ...address,
        current: address.index < (layout?.count ?? config.shardCount(address.region)),
        ...(await shardStub(c.env.SHARD, address).busiest()),
        reported:
          reported.get(address.region)?.find((load) => load.shard === address.index) ?? null,
      };
    }),
  );
  return c.json({ shards });
});

/** One room in one region (`?region=`, any configured region: operators may look anywhere). */
adminRoutes.get("/rooms/:room", async (c) => {
  const config = c.var.config;
  const room = parseRoomName(c.req.param("room"));
  const region = resolveRegion(c.req.query("region"), undefined, {
    ...config,
    allowRegionOverride: true,
  });
  const shard = shardFor(room, region, config, await ownLayouts(c));
  const stub = shardStub(c.env.SHARD, shard);
  const [summary, storage, members] = await Promise.all([
    stub.summary(room),
    stub.storageStats(room),
    stub.members(room),
  ]);
  return c.json({ room, region, shard: shard.name, ...summary, storage, members });
});

/** Calls a region's directory; one that does not answer is a 503, since the change could not be made. */
async function askDirectory<T>(
  config: HaloConfig,
  region: Region,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await withTimeout(call(), config.membership.ackTimeoutMs * 2, `directory ${region}`);
  } catch (error) {
    throw new HttpError(
      503,
      "directory_unavailable",
      `the directory of ${region} did not answer (${error instanceof Error ? error.message : "unknown error"}); try again`,
      "region",
    );
  }
}

/**
 * Drain: the region's own directory announces `left` with a higher incarnation, which beats
 * its `alive` everywhere; the Worker sends no new clients there. Undrain reverses it. Only the
 * region itself can say so (it owns its entry), so its directory must answer.
 */
for (const action of ["drain", "undrain"] as const) {
  adminRoutes.post(`/regions/:region/${action}`, async (c) => {
    const config = c.var.config;
    const region = configuredRegion(c.req.param("region"), config, 404);
    const stub = directoryStub(c.env.DIRECTORY, region);
    const entry = await askDirectory(config, region, () => stub[action](region));
    // A drained region's shards tell their clients to move (the Worker no longer routes here).
    const shards = await kickShards(c.env, config, region, entry);
    return c.json({ region, entry, shards });
  });
}

/**
 * Resize: the region's own directory takes the new count under the next epoch (it owns its
 * entry), the change gossips, and every shard of the region, old and new, is told to hand
 * away the rooms the new count gives to another shard. The same count again only repeats the
 * hand-aways (a retry after a shard did not answer).
 */
adminRoutes.post("/regions/:region/shards", async (c) => {
  const config = c.var.config;
  const region = configuredRegion(c.req.param("region"), config, 404);
  const { shards: count } = await parseJsonBody(resizeRequestSchema, c.req.raw);
  const stub = directoryStub(c.env.DIRECTORY, region);
  const entry = await askDirectory(config, region, () => stub.resize(region, count));
  const shards = await kickShards(c.env, config, region, entry);
  return c.json({ region, entry, shards });
});

/** Tells every shard of `region` (by `entry`'s layout, old counts included) to rebalance. */
async function kickShards(
  env: AppEnv["Bindings"],
  config: HaloConfig,
  region: Region,
  entry: RegionEntry,
): Promise<Array<RebalanceReport | { shard: number; error: string }>> {
  const layouts = layoutsFromEntries([{ ...entry, region }]);
  return Promise.all(
    shardsOf(region, config, layouts).map(async (address) => {
      try {
        return await withTimeout(
          shardStub(env.SHARD, address).rebalance(region, address.index),
          config.rebalance.handOffTimeoutMs * 4,
          address.name,
        );
      } catch (error) {
        // Not fatal: the shard finds the new layout on its next request, and the call is idempotent.
        return { shard: address.index, error: error instanceof Error ? error.message : "failed" };
      }
    }),
  );
}

/** Fault injection exists only where configuration turns it on (never in production). */
adminRoutes.use("/faults", async (c, next) => {
  if (!c.var.config.membership.faultInjection) {
    throw new HttpError(
      404,
      "fault_injection_disabled",
      "fault injection is off: set HALO_CONFIG.membership.faultInjection = true (development only)",
    );
  }
  await next();
});

/** The fault plan every directory holds (each keeps its own copy; they are set together). */
adminRoutes.get("/faults", async (c) => {
  const config = c.var.config;
  const plans = await Promise.all(
    config.regions.map(async (region) => ({
      region,
      faults: await askDirectory(config, region, () =>
        directoryStub(c.env.DIRECTORY, region).getFaults(region),
      ),
    })),
  );
  return c.json({ faults: plans[0]?.faults ?? NO_FAULTS, directories: plans });
});

/** Replaces the fault plan in every configured directory. */
adminRoutes.put("/faults", async (c) => {
  const config = c.var.config;
  const plan = await parseJsonBody(faultPlanSchema, c.req.raw);
  await Promise.all(
    config.regions.map((region) =>
      askDirectory(config, region, () =>
        directoryStub(c.env.DIRECTORY, region).setFaults(region, plan),
      ),
    ),
  );
  return c.json({ faults: plan });
});

adminRoutes.delete("/faults", async (c) => {
  const config = c.var.config;
  await Promise.all(
    config.regions.map((region) =>
      askDirectory(config, region, () =>
        directoryStub(c.env.DIRECTORY, region).setFaults(region, NO_FAULTS),
      ),
    ),
  );
  return c.json({ faults: NO_FAULTS });
});
