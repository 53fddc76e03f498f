import { Hono } from "hono";
import * as Y from "yjs";
import { authenticate, type ConnectionIdentity } from "./auth/authenticate";
import { verifierFor } from "./auth/configured-verifier";
import type { TokenVerifier } from "./auth/token-verifier";
import { ConfigError, configFromEnv, type HaloConfig } from "./config/config-schema";
import { adminRoutes } from "./http/admin-routes";
import type { AppEnv, Bindings } from "./http/app-env";
import { HttpError } from "./http/errors";
import { openApiDocument, openApiPage } from "./http/openapi";
import { parseJsonBody, parseQuery } from "./http/query-params";
import { routeClient } from "./http/region-directory";
import { restClientKey, restLimiterFor, spendRestRequest } from "./http/rest-rate-limit";
import {
  nearestRegions,
  parsePresenceOption,
  parseRoomName,
  parseStateVector,
  SHARD_HEADERS,
} from "./http/room-request";
import { shardStub } from "./http/shard-stub";
import { assertValidHandshake, wantsWebSocket } from "./http/websocket-handshake";
import { localSources, mergeRegionAnswers, type SourceReport } from "./presence/global-presence";
import {
  BadCursor,
  historyQuerySchema,
  multiRoomQuerySchema,
  presencePage,
  presenceQuerySchema,
} from "./presence/presence-query";
import type { PresenceSnapshot } from "./presence/presence-schema";
import type { RequestLocation } from "./routing/region-locator";
import { layoutsFromEntries } from "./routing/shard-layout";
import { shardFor } from "./routing/shard-router";

export { DirectoryDurableObject } from "../durable-objects/directory";
export { ShardDurableObject } from "../durable-objects/shard";

const app = new Hono<AppEnv>();

// Configuration is parsed once per isolate; a bad one fails every request with a clear message.
app.use("*", async (c, next) => {
  const config = configFromEnv(c.env);
  if (config.presence.webhook && !c.env.HALO_WEBHOOK_SECRET) {
    // Unsigned webhooks could be forged by anyone who learns the URL: none are sent unsigned.
    throw new ConfigError(
      "presence.webhook is configured but the HALO_WEBHOOK_SECRET secret is not set",
    );
  }
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

type RouteContext = {
  req: {
    param(name: "room"): string | undefined;
    query(name: string): string | undefined;
    header(name: string): string | undefined;
    raw: Request;
  };
  env: Bindings;
  var: { config: HaloConfig; verifier: TokenVerifier | null };
};

/**
 * Resolves the room, the caller's identity and rights, its region and the shard serving them
 * (by the shard layout of the table; `tableMaxAgeMs` 0 reads the table afresh).
 */
async function target(c: RouteContext, tableMaxAgeMs?: number) {
  return targetFor(c, parseRoomName(c.req.param("room")), tableMaxAgeMs);
}

/** `target()` for a room name already validated. */
async function targetFor(
  c: Omit<RouteContext, "req"> & { req: Omit<RouteContext["req"], "param"> },
  room: string,
  tableMaxAgeMs?: number,
) {
  const bearer = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  const identity: ConnectionIdentity = await authenticate(
    { bearer, token: c.req.query("token"), user: c.req.query("user") },
    room,
    c.var.config.auth,
    c.var.verifier,
    Date.now(),
    () => crypto.randomUUID(),
  );
  const { region, view } = await routeClient(
    c.env,
    c.var.config,
    nearestRegions(
      c.req.query("region"),
      c.req.raw.cf as RequestLocation | undefined,
      c.var.config,
    ),
    Date.now(),
    tableMaxAgeMs,
  );
  const layouts = view ? layoutsFromEntries(view.entries) : undefined;
  const shard = shardFor(room, region, c.var.config, layouts);
  const epoch = layouts?.(region)?.epoch ?? 0;
  return { room, region, shard, epoch, identity, view, stub: shardStub(c.env.SHARD, shard) };
}

/** `target()` for a REST query: the same checks, then one request from the caller's rate budget. */
async function restTarget(c: RouteContext) {
  const resolved = await target(c);
  spendFor(c, resolved.identity);
  return resolved;
}

function spendFor(
  c: Omit<RouteContext, "req"> & { req: Pick<RouteContext["req"], "header"> },
  identity: ConnectionIdentity,
): void {
  const limits = c.var.config.limits;
  spendRestRequest(
    restLimiterFor(c.env, limits),
    restClientKey(identity, c.req.header("cf-connecting-ip")),
    Date.now(),
    limits,
  );
}

app.all("/v1/rooms/:room", async (c) => {
  if (wantsWebSocket(c.req.raw.headers)) {
    assertValidHandshake(c.req.method, c.req.raw.headers);
    const presence = parsePresenceOption(c.req.query("presence"));
    const upgrade = async (routed: Awaited<ReturnType<typeof target>>) => {
      const { room, region, shard, epoch, identity, stub } = routed;
      const forwarded = new Request(c.req.raw);
      forwarded.headers.set(SHARD_HEADERS.room, room);
      forwarded.headers.set(SHARD_HEADERS.region, region);
      forwarded.headers.set(SHARD_HEADERS.shard, String(shard.index));
      forwarded.headers.set(SHARD_HEADERS.epoch, String(epoch));
      forwarded.headers.set(SHARD_HEADERS.identity, JSON.stringify(identity));
      forwarded.headers.delete(SHARD_HEADERS.forwarded); // only a shard may set it
      if (presence) forwarded.headers.set(SHARD_HEADERS.presence, presence);
      else forwarded.headers.delete(SHARD_HEADERS.presence); // only the Worker may set it
      return stub.fetch(forwarded);
    };
    const response = await upgrade(await target(c));
    // 421: the region was drained, or the room moved, after this isolate read its table; route
    // again from a fresh one.
    return response.status === 421 ? upgrade(await target(c, 0)) : response;
  }
  if (c.req.method !== "GET") throw methodNotAllowed(c.req.method);
  const { room, region, shard, epoch, stub } = await restTarget(c);
  return c.json({ room, region, shard: shard.name, ...(await stub.summary(room, epoch)) });
});

app.get("/v1/rooms/:room/presence", async (c) => {
  const query = parseQuery(presenceQuerySchema, c.req.query());
  const { room, region, shard, epoch, stub, view } = await restTarget(c);
  const config = c.var.config;
  let answer: { snapshot: PresenceSnapshot; sources: SourceReport[] };
  if (query.consistency === "all") {
    // Every other region that may serve is asked for the members it owns, by the nearest replica.
    const status = new Map(view?.entries.map((entry) => [entry.region, entry.status]));
    const others = config.regions.filter(
      (r) => r !== region && status.get(r) !== "dead" && status.get(r) !== "left",
    );
    const { local, answers } = await stub.presenceAll(room, others, epoch);
    answer = mergeRegionAnswers(local, answers);
  } else {
    const local = await stub.presenceView(room, epoch);
    answer = { snapshot: local.snapshot, sources: localSources(local.sources, local.at) };
  }
  try {
    return c.json({
      room,
      region,
      shard: shard.name,
      consistency: query.consistency,
      sources: answer.sources,
      ...presencePage(answer.snapshot, query),
    });
  } catch (error) {
    if (error instanceof BadCursor)
      throw new HttpError(400, "invalid_cursor", error.message, "cursor");
    throw error;
  }
});

app.get("/v1/rooms/:room/presence/history", async (c) => {
  const query = parseQuery(historyQuerySchema, c.req.query());
  const { room, epoch, stub } = await restTarget(c);
  const { version, events } = await stub.presenceHistory(
    room,
    {
      ...(query.since !== undefined ? { afterSeq: query.since } : {}),
      ...(query.from !== undefined ? { fromMs: query.from } : {}),
      ...(query.to !== undefined ? { toMs: query.to } : {}),
      limit: query.limit + 1, // one more than asked: tells whether there is a next page
    },
    epoch,
  );
  const page = events.slice(0, query.limit);
  const last = page.at(-1);
  return c.json({
    room,
    version,
    events: page,
    ...(events.length > query.limit && last ? { nextCursor: String(last.seq) } : {}),
  });
});

app.get("/v1/rooms/:room/document", async (c) => {
  const since = parseStateVector(c.req.query("since"), Y.decodeStateVector);
  const { room, epoch, stub } = await restTarget(c);
  const update = await stub.document(room, since, epoch);
  return c.body(update, 200, {
    "content-type": "application/octet-stream",
    "cache-control": "no-store",
  });
});

/**
 * Presence of many rooms in one call: counts (the default) or members. A room the token may
 * not read answers with its own error; a bad token fails the whole request.
 */
app.post("/v1/presence/query", async (c) => {
  const body = await parseJsonBody(multiRoomQuerySchema, c.req.raw);
  let spent = false;
  const results = await Promise.all(
    body.rooms.map(async (room) => {
      try {
        const resolved = await targetFor(c, room);
        if (!spent) {
          spendFor(c, resolved.identity); // one request from the budget, whatever the room count
          spent = true;
        }
        const page = presencePage(await resolved.stub.presence(room, resolved.epoch), {
          view: "members",
          limit: 1000,
          ...(body.userId !== undefined ? { userId: body.userId } : {}),
          ...(body.view === "counts" ? { count: "1" } : {}),
        });
        return [room, page] as const;
      } catch (error) {
        if (error instanceof HttpError && error.status === 403)
          return [room, error.toBody()] as const;
        throw error;
      }
    }),
  );
  return c.json({ results: Object.fromEntries(results) });
});

/**
 * The region-membership table as the caller's nearest directory sees it (`?region=` picks the
 * directory where configuration allows), and the region a new client from here would get.
 */
app.get("/v1/regions", async (c) => {
  const config = c.var.config;
  // No token here: the table names regions, not rooms or users. Rate-limited per caller IP.
  spendRestRequest(
    restLimiterFor(c.env, config.limits),
    `ip:${c.req.header("cf-connecting-ip") ?? "unknown"}`,
    Date.now(),
    config.limits,
  );
  const nearest = nearestRegions(
    c.req.query("region"),
    c.req.raw.cf as RequestLocation | undefined,
    config,
  );
  // Fresh, not cached: this is what operators look at while a failure unfolds.
  const { region, view } = await routeClient(c.env, config, nearest, Date.now(), 0);
  if (!view) {
    throw new HttpError(503, "directory_unavailable", "no directory near you answered; try again");
  }
  return c.json({
    answeredBy: view.region,
    incarnation: view.incarnation,
    health: view.health,
    clientRegion: region,
    regions: view.entries.map((entry) => ({
      ...entry,
      configured: config.regions.includes(entry.region),
      drain: entry.status !== "left" ? null : entry.load.connections > 0 ? "draining" : "empty",
    })),
  });
});

/** The OpenAPI document, built once per isolate from the route schemas. */
let openApi: ReturnType<typeof openApiDocument> | undefined;

app.get("/v1/openapi.json", (c) => {
  openApi ??= openApiDocument();
  return c.json(openApi);
});

app.get("/v1/docs", (c) => {
  openApi ??= openApiDocument();
  return c.html(openApiPage(openApi));
});

app.route("/v1/admin", adminRoutes);

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
