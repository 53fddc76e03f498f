import { Hono } from "hono";
import * as Y from "yjs";
import { authenticate, type ConnectionIdentity } from "./auth/authenticate";
import { createTokenVerifier, type TokenVerifier } from "./auth/token-verifier";
import { ConfigError, configFromEnv, type HaloConfig } from "./config/config-schema";
import type { Member, RoomSummary } from "./core/room-replica";
import { HttpError } from "./http/errors";
import { parseRoomName, parseStateVector, resolveRegion, SHARD_HEADERS } from "./http/room-request";
import { assertValidHandshake, wantsWebSocket } from "./http/websocket-handshake";
import type { RequestLocation } from "./routing/region-locator";
import { type ShardAddress, shardFor } from "./routing/shard-router";

export { ShardDurableObject } from "../durable-objects/shard";

/** Secrets come from `wrangler secret put` (or `.dev.vars` locally), never from wrangler.toml. */
type Secrets = { HALO_TOKEN_SECRET?: string };
type Bindings = Env & Secrets;
type AppEnv = {
  Bindings: Bindings;
  Variables: { config: HaloConfig; verifier: TokenVerifier | null };
};

const verifiers = new WeakMap<object, TokenVerifier | null>();

/** The token verifier for this isolate's keys, or null when none is configured. */
function verifierFor(env: Bindings, config: HaloConfig): TokenVerifier | null {
  if (verifiers.has(env)) return verifiers.get(env) ?? null;
  const secret = env.HALO_TOKEN_SECRET || undefined;
  const verifier =
    secret || config.auth.jwks
      ? createTokenVerifier(
          { hs256Secret: secret, jwks: config.auth.jwks as JsonWebKeySetLike | undefined },
          config.auth,
        )
      : null;
  if (verifier === null && !config.auth.anonymous) {
    // Secure by default: a deployment that could check no token serves nothing.
    throw new ConfigError(
      "no token key configured: set the HALO_TOKEN_SECRET secret or HALO_CONFIG.auth.jwks (or, in development only, HALO_CONFIG.auth.anonymous = true)",
    );
  }
  verifiers.set(env, verifier);
  return verifier;
}

type JsonWebKeySetLike = Parameters<typeof createTokenVerifier>[0]["jwks"];

const app = new Hono<AppEnv>();

// Configuration is parsed once per isolate; a bad one fails every request with a clear message.
app.use("*", async (c, next) => {
  const config = configFromEnv(c.env);
  c.set("config", config);
  c.set("verifier", verifierFor(c.env, config));
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

/** Resolves the room, the caller's identity and rights, its region and the shard serving them. */
async function target(c: {
  req: {
    param(name: "room"): string | undefined;
    query(name: string): string | undefined;
    header(name: string): string | undefined;
    raw: Request;
  };
  env: Bindings;
  var: { config: HaloConfig; verifier: TokenVerifier | null };
}) {
  const room = parseRoomName(c.req.param("room"));
  const bearer = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  const identity: ConnectionIdentity = await authenticate(
    { bearer, token: c.req.query("token"), user: c.req.query("user") },
    room,
    c.var.config.auth,
    c.var.verifier,
    Date.now(),
    () => crypto.randomUUID(),
  );
  const region = resolveRegion(
    c.req.query("region"),
    c.req.raw.cf as RequestLocation | undefined,
    c.var.config,
  );
  const shard = shardFor(room, region, c.var.config);
  return { room, region, shard, identity, stub: shardStub(c.env, shard) };
}

/** The shard's RPC surface as the Worker uses it (the generated stub type is too deep for the compiler). */
interface ShardStub {
  fetch(request: Request): Promise<Response>;
  summary(room: string): Promise<RoomSummary>;
  presence(room: string): Promise<Member[]>;
  document(room: string, since: Uint8Array | null): Promise<Uint8Array<ArrayBuffer>>;
}

function shardStub(env: Bindings, shard: ShardAddress): ShardStub {
  // The location hint only matters the first time the object is created; it places the shard in its region.
  const stub = env.SHARD.get(env.SHARD.idFromName(shard.name), {
    locationHint: shard.region as DurableObjectLocationHint,
  });
  return stub as unknown as ShardStub;
}

app.all("/v1/rooms/:room", async (c) => {
  if (wantsWebSocket(c.req.raw.headers)) {
    assertValidHandshake(c.req.method, c.req.raw.headers);
    const { room, region, identity, stub } = await target(c);
    const forwarded = new Request(c.req.raw);
    forwarded.headers.set(SHARD_HEADERS.room, room);
    forwarded.headers.set(SHARD_HEADERS.region, region);
    forwarded.headers.set(SHARD_HEADERS.identity, JSON.stringify(identity));
    return stub.fetch(forwarded);
  }
  if (c.req.method !== "GET") throw methodNotAllowed(c.req.method);
  const { room, region, shard, stub } = await target(c);
  return c.json({ room, region, shard: shard.name, ...(await stub.summary(room)) });
});

app.get("/v1/rooms/:room/presence", async (c) => {
  const { room, region, shard, stub } = await target(c);
  const members = await stub.presence(room);
  return c.json({ room, region, shard: shard.name, count: members.length, members });
});

app.get("/v1/rooms/:room/document", async (c) => {
  const since = parseStateVector(c.req.query("since"), Y.decodeStateVector);
  const { room, stub } = await target(c);
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
