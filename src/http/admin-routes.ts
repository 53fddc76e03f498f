import { Hono } from "hono";
import { allShards, shardFor } from "../routing/shard-router";
import { assertAdmin } from "./admin-auth";
import type { AppEnv } from "./app-env";
import { parseRoomName, resolveRegion } from "./room-request";
import { shardStub } from "./shard-stub";

/**
 * Operator endpoints, mounted at `/admin`: shard figures and a room's storage internals.
 * Every route needs the admin token; with none configured they are all off.
 */
export const adminRoutes = new Hono<AppEnv>();

adminRoutes.use("*", async (c, next) => {
  await assertAdmin(c.req.header("authorization"), c.env.HALO_ADMIN_TOKEN);
  await next();
});

/** Every configured shard with its loaded rooms and open sockets. */
adminRoutes.get("/shards", async (c) => {
  const shards = await Promise.all(
    allShards(c.var.config).map(async (address) => ({
      ...address,
      ...(await shardStub(c.env.SHARD, address).stats()),
    })),
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
  const shard = shardFor(room, region, config);
  const stub = shardStub(c.env.SHARD, shard);
  const [summary, storage, members] = await Promise.all([
    stub.summary(room),
    stub.storageStats(room),
    stub.members(room),
  ]);
  return c.json({ room, region, shard: shard.name, ...summary, storage, members });
});
