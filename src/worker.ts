import { Hono } from "hono";
import * as Y from "yjs";
import { ConfigError, configFromEnv, type HaloConfig } from "./config/config-schema";
import type { Member, RoomSummary } from "./core/room-replica";
import { HttpError } from "./http/errors";
import { parseRoomName, parseStateVector, resolveRegion, SHARD_HEADERS } from "./http/room-request";
import { assertValidHandshake, wantsWebSocket } from "./http/websocket-handshake";
import type { RequestLocation } from "./routing/region-locator";
import { type ShardAddress, shardFor } from "./routing/shard-router";

export { ShardDurableObject } from "../durable-objects/shard";

type AppEnv = { Bindings: Env; Variables: { config: HaloConfig } };

const app = new Hono<AppEnv>();

// Configuration is parsed once per isolate; a bad one fails every request with a clear message.
app.use("*", async (c, next) => {
  c.set("config", configFromEnv(c.env));
  await next();
});

app.get("/healthz", (c) => {
  const config = c.var.config;
  return c.json({
    ok: true,
    environment: config.environment,
    regions: config.regions.map((region) => ({ region, shards: config.shardCount(region) })),
  });
});

/** Resolves the room, the client's region and the shard serving them, from the path and query. */
function target(c: {
  req: {
    param(name: "room"): string | undefined;
    query(name: string): string | undefined;
    raw: Request;
  };
  env: Env;
  var: { config: HaloConfig };
}) {
  const room = parseRoomName(c.req.param("room"));
  const region = resolveRegion(
    c.req.query("region"),
    c.req.raw.cf as RequestLocation | undefined,
    c.var.config,
  );
  const shard = shardFor(room, region, c.var.config);
  return { room, region, shard, stub: shardStub(c.env, shard) };
}

/** The shard's RPC surface as the Worker uses it (the generated stub type is too deep for the compiler). */
interface ShardStub {
  fetch(request: Request): Promise<Response>;
  summary(room: string): Promise<RoomSummary>;
  presence(room: string): Promise<Member[]>;
  document(room: string, since: Uint8Array | null): Promise<Uint8Array<ArrayBuffer>>;
}

function shardStub(env: Env, shard: ShardAddress): ShardStub {
  // The location hint only matters the first time the object is created; it places the shard in its region.
  const stub = env.SHARD.get(env.SHARD.idFromName(shard.name), {
    locationHint: shard.region as DurableObjectLocationHint,
  });
  return stub as unknown as ShardStub;
}

app.all("/v1/rooms/:room", async (c) => {
  if (wantsWebSocket(c.req.raw.headers)) {
    assertValidHandshake(c.req.method, c.req.raw.headers);
    const { room, region, stub } = target(c);
    const forwarded = new Request(c.req.raw);
    forwarded.headers.set(SHARD_HEADERS.room, room);
    forwarded.headers.set(SHARD_HEADERS.region, region);
    return stub.fetch(forwarded);
  }
  if (c.req.method !== "GET") throw methodNotAllowed(c.req.method);
  const { room, region, shard, stub } = target(c);
  return c.json({ room, region, shard: shard.name, ...(await stub.summary(room)) });
});

app.get("/v1/rooms/:room/presence", async (c) => {
  const { room, region, shard, stub } = target(c);
  const members = await stub.presence(room);
  return c.json({ room, region, shard: shard.name, count: members.length, members });
});

app.get("/v1/rooms/:room/document", async (c) => {
  const since = parseStateVector(c.req.query("since"), Y.decodeStateVector);
  const { room, stub } = target(c);
  const update = await stub.document(room, since);
  return c.body(update, 200, {
    "content-type": "application/octet-stream",
    "cache-control": "no-store",
  });
});

app.notFound((c) =>
  c.json(
    new HttpError(
      404,
      "not_found",
      `no route for ${c.req.method} ${new URL(c.req.url).pathname}`,
    ).toBody(),
    404,
  ),
);

app.onError((error, c) => {
  if (error instanceof HttpError) return c.json(error.toBody(), error.status, error.headers);
  if (error instanceof ConfigError)
    return c.json({ error: { code: "invalid_config", message: error.message } }, 500);
  console.error("unhandled error", error);
  return c.json({ error: { code: "internal", message: "internal error" } }, 500);
});

function methodNotAllowed(method: string): HttpError {
  return new HttpError(
    405,
    "method_not_allowed",
    `${method} is not allowed here; use GET`,
    "method",
    { Allow: "GET" },
  );
}

export default app;
