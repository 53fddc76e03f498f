import { z } from "zod";
import { MAX_PATTERN_LENGTH, matchesPattern, rightSchema } from "../auth/capabilities";
import { type Region, regionSchema } from "./regions";

const MiB = 1024 * 1024;

/**
 * Bytes of awareness state one connection may own in all: its socket attachment (16 KiB on
 * the platform) also holds its identity, whose user info alone may take 4 KiB.
 */
export const ATTACHMENT_STATE_BUDGET_BYTES = 9 * 1024;

/**
 * Every limit the service enforces, by name. Each has a default and is overridable in
 * `wrangler.toml` under `[vars.HALO_CONFIG.limits]`.
 */
export const limitsSchema = z
  .object({
    /** Largest binary WebSocket frame accepted from a client, in bytes. */
    maxFrameBytes: z
      .number()
      .int()
      .min(1024)
      .max(32 * MiB)
      .default(MiB),
    /** Largest JSON awareness state of one client, in UTF-8 bytes (it also lives in the 16 KiB socket attachment). */
    maxAwarenessStateBytes: z
      .number()
      .int()
      .min(64)
      .max(ATTACHMENT_STATE_BUDGET_BYTES)
      .default(8 * 1024),
    /** How many awareness clientIDs one connection may own (stock clients use one). */
    maxClientIdsPerConnection: z.number().int().min(1).max(16).default(1),
    /** Open WebSockets one room accepts in one shard; one more is closed with 1013 (try again later). */
    maxConnectionsPerRoom: z.number().int().min(1).max(32_768).default(1000),
    /** Sustained frames per second one connection may send (token bucket); over it, the socket closes with 1008. */
    messagesPerSecond: z.number().min(1).default(100),
    /** Frames one connection may send at once above the sustained rate: the bucket's size. */
    messageBurst: z.number().int().min(1).default(200),
    /** Sustained REST requests per second per client key (userId with a token, else the caller's IP). */
    restRequestsPerSecond: z.number().min(0.1).default(20),
    /** REST requests one client key may make at once above the sustained rate. */
    restBurst: z.number().int().min(1).default(40),
    /** Client keys whose REST rate one Worker isolate tracks; least recently seen are forgotten beyond it. */
    maxTrackedRestClients: z.number().int().min(100).default(10_000),
    /** Largest page of a presence snapshot sent to a subscriber (bytes of JSON); the platform caps a message at 1 MiB. */
    snapshotPageBytes: z
      .number()
      .int()
      .min(1024)
      .max(512 * 1024)
      .default(256 * 1024),
    /** Stored bytes of one room's document (snapshot + log); over it, updates that add content are refused. */
    maxDocumentBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(16 * MiB),
    /** Rooms a shard keeps loaded at once; idle rooms beyond it are unloaded, least recently used first. */
    maxRoomsInMemory: z.number().int().min(1).default(1000),
    /** Approximate bytes of document state a shard keeps loaded; idle rooms beyond it are unloaded. */
    roomMemoryBudgetBytes: z
      .number()
      .int()
      .min(MiB)
      .default(64 * MiB),
    /** Compact a room's update log into a snapshot once it holds this many updates... */
    compactAfterUpdates: z.number().int().min(1).default(500),
    /** ...or this many bytes, whichever comes first. */
    compactAfterBytes: z
      .number()
      .int()
      .min(1024)
      .default(4 * MiB),
    /** Largest blob written to one SQLite row; the platform's row limit is 2 MB. */
    maxRowBytes: z.number().int().min(1024).max(2_000_000).default(MiB),
  })
  .strict();

export type Limits = z.infer<typeof limitsSchema>;

const jwkSchema = z.looseObject({ kty: z.enum(["EC", "RSA"]), kid: z.string().optional() });

/** Who may connect, and how tokens are checked. The HS256 secret is a secret (`HALO_TOKEN_SECRET`), never configuration. */
export const authSchema = z
  .object({
    /** Lets clients in without a token: development only. The userId comes from `?user=` or is generated. */
    anonymous: z.boolean().default(false),
    /** The rights of a connection without a token, when `anonymous` is on. */
    anonymousRights: z.array(rightSchema).default(["read", "write", "presence"]),
    /** Public keys for ES256 / RS256 tokens, inline so that nothing is fetched per request. */
    jwks: z.object({ keys: z.array(jwkSchema).min(1) }).optional(),
    /** When set, tokens must carry this `iss`. */
    issuer: z.string().min(1).optional(),
    /** When set, tokens must carry this `aud`. */
    audience: z.string().min(1).optional(),
    /** Clock skew allowed when checking `exp`, in seconds. */
    clockToleranceSeconds: z.number().int().min(0).max(300).default(5),
    /** A token whose `exp` is further ahead than this is refused (seconds; default 30 days). */
    maxTokenLifetimeSeconds: z
      .number()
      .int()
      .min(60)
      .max(365 * 24 * 3600)
      .default(30 * 24 * 3600),
  })
  .strict();

export type AuthSettings = z.infer<typeof authSchema>;

const graceMsSchema = z
  .number()
  .int()
  .min(0)
  .max(24 * 3600 * 1000);

export const webhookSchema = z
  .object({
    /** Where events are posted (http or https). */
    url: z.url({ protocol: /^https?$/ }),
    /** Which user events are posted. */
    events: z
      .array(z.enum(["user.join", "user.leave"]))
      .min(1)
      .default(["user.join", "user.leave"]),
    /** Deliveries tried before an event is given up (each retry waits twice as long, up to 10 minutes). */
    maxAttempts: z.number().int().min(1).max(20).default(8),
    /** How long one delivery may take (ms). */
    timeoutMs: z.number().int().min(100).max(30_000).default(5_000),
  })
  .strict();

export type WebhookSettings = z.infer<typeof webhookSchema>;

/** The presence layer (DESIGN.md, "Presence semantics"). */
export const presenceSchema = z
  .object({
    /** How long a member whose connection dropped stays `reconnecting` before it leaves with `timeout` (ms; 0 allowed). */
    graceMs: graceMsSchema.default(15_000),
    /** Per room-name pattern (`*` wildcard) grace, first match wins; rooms that match none use `graceMs`. */
    graceByRoom: z
      .array(
        z.object({ pattern: z.string().min(1).max(MAX_PATTERN_LENGTH), graceMs: graceMsSchema }),
      )
      .max(100)
      .default([]),
    /**
     * How long a member's state update may wait in memory before it is written to the history
     * (ms); a member's updates within it are written once, with the latest state. Joins, leaves
     * and status changes are written at once. A cursor moving every second would otherwise cost
     * a row (and a shard alarm) per member every flush: the largest line of the bill
     * (docs/BENCHMARKS.md, "Cost model").
     */
    historyFlushMs: z.number().int().min(100).max(600_000).default(30_000),
    /** Rooms with more members than this coalesce state updates (one event per member per window). */
    coalesceAboveMembers: z.number().int().min(1).default(100),
    /** The coalescing window of large rooms (ms). */
    coalesceWindowMs: z.number().int().min(10).max(5_000).default(200),
    /** History older than this is deleted (ms). */
    historyRetentionMs: z
      .number()
      .int()
      .min(60_000)
      .default(7 * 24 * 3600 * 1000),
    /** At most this many history events are kept per room. */
    maxHistoryEvents: z.number().int().min(100).max(1_000_000).default(10_000),
    /** Posts user first-join / last-leave to a URL, signed with the HALO_WEBHOOK_SECRET secret. Off when absent. */
    webhook: webhookSchema.optional(),
  })
  .strict();

export type PresenceSettings = z.infer<typeof presenceSchema>;

/** The disconnect grace of `room`: the first matching pattern's, else the default. */
export function graceFor(room: string, presence: PresenceSettings): number {
  return (
    presence.graceByRoom.find((rule) => matchesPattern(room, rule.pattern))?.graceMs ??
    presence.graceMs
  );
}

/**
 * Region membership (DESIGN.md, "Region membership"): the gossip directory's rhythm and its
 * failure detector. Defaults follow memberlist's WAN profile scaled to seconds: a crashed
 * region is suspected after about 5 s without a heartbeat and, with every other region
 * confirming, declared dead a few seconds later; a lone accuser waits up to 24 s.
 */
export const membershipSchema = z
  .object({
    /** One gossip round per directory every this many ms (the directory's alarm). */
    gossipIntervalMs: z.number().int().min(50).max(60_000).default(1_000),
    /** Peers each round's digest goes to. */
    fanout: z.number().int().min(1).max(16).default(3),
    /** A region whose heartbeat has not advanced for this long is suspected (ms, scaled by log10 of the region count). */
    suspectAfterMs: z.number().int().min(100).default(5_000),
    /** Shortest wait before a suspicion becomes a death: with `suspicionConfirmations` independent reports (ms). */
    suspicionMinMs: z.number().int().min(100).default(4_000),
    /** Longest wait before a suspicion becomes a death: one region's report alone (ms). */
    suspicionMaxMs: z.number().int().min(100).default(24_000),
    /** Independent reports that bring a suspicion's wait down to its minimum. */
    suspicionConfirmations: z.number().int().min(1).max(16).default(3),
    /** A gossip exchange unanswered this long counts against the sender's own health (ms). */
    ackTimeoutMs: z.number().int().min(10).default(1_000),
    /** Local health score cap: a struggling region stretches its timeouts up to (1 + this) times. */
    maxHealthScore: z.number().int().min(0).max(16).default(8),
    /** Regions a directory contacts while it does not know them yet; empty means every configured region. */
    seeds: z.array(regionSchema).default([]),
    /** A shard reports its load (connections, loaded rooms) to its directory at most once per this many ms. */
    loadReportMs: z.number().int().min(100).max(600_000).default(5_000),
    /** How long the Worker and shards reuse a fetched table before asking their directory again (ms). */
    cacheMs: z.number().int().min(0).max(60_000).default(2_000),
    /** Turns on the admin route that injects partitions, latency and stopped directories (development only). */
    faultInjection: z.boolean().default(false),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.suspectAfterMs < 2 * m.gossipIntervalMs) {
      ctx.addIssue({
        code: "custom",
        path: ["suspectAfterMs"],
        message: "must be at least twice gossipIntervalMs (a heartbeat needs rounds to spread)",
      });
    }
    if (m.suspicionMaxMs < m.suspicionMinMs) {
      ctx.addIssue({
        code: "custom",
        path: ["suspicionMaxMs"],
        message: "must be at least suspicionMinMs",
      });
    }
  });

export type MembershipSettings = z.infer<typeof membershipSchema>;

/**
 * Replication between regions (DESIGN.md, "Replication between regions"): how local changes
 * are batched to peer regions, how often replicas repair each other, and when an idle replica
 * leaves. Only a deployment with more than one region replicates.
 */
export const replicationSchema = z
  .object({
    /** Local changes gather this long before they go to every peer region as one batch (ms; 0: at once). */
    batchMs: z.number().int().min(0).max(1_000).default(20),
    /** Anti-entropy period of a replica with local clients: state vectors and members compared (ms). */
    antiEntropyMs: z.number().int().min(100).max(600_000).default(5_000),
    /**
     * A peer's update that arrives before one it builds on (a batch lost or overtaken) makes the
     * receiver ask that peer for anti-entropy at once, at most once per this many ms, instead of
     * waiting for the next period.
     */
    gapRepairMs: z.number().int().min(10).max(60_000).default(250),
    /** A replica without local clients for this long leaves the room's replica set (ms); the home and backup stay. */
    idleLeaveMs: z
      .number()
      .int()
      .min(0)
      .max(24 * 3600 * 1000)
      .default(60_000),
    /** A peer not heard from for this long is no longer sent to (ms); at least twice `antiEntropyMs`. */
    peerExpiryMs: z.number().int().min(200).default(15_000),
    /** A call to a peer region's shard unanswered this long counts as lost (anti-entropy repairs it) (ms). */
    rpcTimeoutMs: z.number().int().min(10).max(60_000).default(2_000),
    /** `?consistency=all` waits this long for each region's own members before answering without it (ms). */
    queryTimeoutMs: z.number().int().min(10).max(30_000).default(1_000),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.peerExpiryMs < 2 * r.antiEntropyMs) {
      ctx.addIssue({
        code: "custom",
        path: ["peerExpiryMs"],
        message:
          "must be at least twice antiEntropyMs (active peers refresh each other once a period)",
      });
    }
  });

export type ReplicationSettings = z.infer<typeof replicationSchema>;

/**
 * Fan-out coalescing (src/core/fanout-batch.ts): changes that arrive close together leave a
 * room as one frame per socket and one document write. A room coalesces only as much as keeps
 * it within these budgets: a small, quiet room sends every change at once.
 */
export const fanoutSchema = z
  .object({
    /** The longest a change may wait to leave with others (ms); 0 turns coalescing off. */
    maxCoalesceMs: z.number().min(0).max(1_000).default(20),
    /** Frames per second one room may send to its sockets before changes coalesce (a window is connections / this). */
    sendsPerSecond: z.number().min(100).default(50_000),
    /** Document writes per second one room may make before updates coalesce into one write. */
    writesPerSecond: z.number().min(1).default(500),
  })
  .strict();

export type FanoutSettings = z.infer<typeof fanoutSchema>;

/**
 * Moving rooms between shards of a region after a resize or a drain (DESIGN.md, "Routing"),
 * and the load target over which a shard is named hot in the membership table.
 */
export const rebalanceSchema = z
  .object({
    /** A shard with more open sockets than this is hot (the table names it; operators resize). */
    hotConnections: z.number().int().min(1).default(20_000),
    /** A shard receiving more client frames per second than this is hot (the platform's soft limit is about 1,000 requests/s). */
    hotMessagesPerSecond: z.number().min(1).default(1_000),
    /** How long a new shard waits for an old one's hand-off before it serves without it (ms; the move finishes later). */
    handOffTimeoutMs: z.number().int().min(10).max(60_000).default(2_000),
    /** How often a shard retries a move that has not finished (the old copy is kept until then) (ms). */
    retryMs: z.number().int().min(100).max(600_000).default(5_000),
    /**
     * A member handed over with its room stays `present` this long while its client reconnects
     * (no status flicker); one not back by then turns `reconnecting` for its grace (ms; 0: at once).
     */
    movedGraceMs: z.number().int().min(0).max(60_000).default(5_000),
  })
  .strict();

export type RebalanceSettings = z.infer<typeof rebalanceSchema>;

export const haloConfigSchema = z
  .object({
    /** `development` allows conveniences (region override); `production` forbids them. */
    environment: z.enum(["development", "production"]).default("production"),
    /** Deployed regions and the shard count of each. */
    shards: z
      .partialRecord(regionSchema, z.number().int().min(1).max(1024))
      .refine((m) => Object.keys(m).length > 0, "configure at least one region"),
    /** Region used when the request carries no location (local runs). Defaults to the first configured. */
    defaultRegion: regionSchema.optional(),
    /** Lets a client choose its region with `?region=`; development only. */
    allowRegionOverride: z.boolean().default(false),
    limits: limitsSchema.default(limitsSchema.parse({})),
    auth: authSchema.default(authSchema.parse({})),
    presence: presenceSchema.default(presenceSchema.parse({})),
    membership: membershipSchema.default(membershipSchema.parse({})),
    replication: replicationSchema.default(replicationSchema.parse({})),
    fanout: fanoutSchema.default(fanoutSchema.parse({})),
    rebalance: rebalanceSchema.default(rebalanceSchema.parse({})),
  })
  .strict()
  .superRefine((config, ctx) => {
    const { maxClientIdsPerConnection, maxAwarenessStateBytes } = config.limits;
    if (maxClientIdsPerConnection * maxAwarenessStateBytes > ATTACHMENT_STATE_BUDGET_BYTES) {
      ctx.addIssue({
        code: "custom",
        path: ["limits", "maxAwarenessStateBytes"],
        message: `maxClientIdsPerConnection x maxAwarenessStateBytes must be at most ${ATTACHMENT_STATE_BUDGET_BYTES} (a connection's states live in its 16 KiB socket attachment, beside its identity)`,
      });
    }
    if (config.environment === "production" && config.allowRegionOverride) {
      ctx.addIssue({
        code: "custom",
        path: ["allowRegionOverride"],
        message: "must be false when environment is production",
      });
    }
    if (config.environment === "production" && config.auth.anonymous) {
      ctx.addIssue({
        code: "custom",
        path: ["auth", "anonymous"],
        message: "must be false when environment is production",
      });
    }
    if (config.environment === "production" && config.membership.faultInjection) {
      ctx.addIssue({
        code: "custom",
        path: ["membership", "faultInjection"],
        message: "must be false when environment is production",
      });
    }
    for (const [index, seed] of config.membership.seeds.entries()) {
      if (!(seed in config.shards)) {
        ctx.addIssue({
          code: "custom",
          path: ["membership", "seeds", index],
          message: `"${seed}" is not a configured region (see shards)`,
        });
      }
    }
    if (config.defaultRegion !== undefined && !(config.defaultRegion in config.shards)) {
      ctx.addIssue({
        code: "custom",
        path: ["defaultRegion"],
        message: `"${config.defaultRegion}" is not a configured region (see shards)`,
      });
    }
  });

export type HaloConfigInput = z.input<typeof haloConfigSchema>;

export interface HaloConfig {
  environment: "development" | "production";
  /** Configured regions in configuration order. */
  regions: readonly Region[];
  shardCount(region: Region): number;
  defaultRegion: Region;
  allowRegionOverride: boolean;
  limits: Limits;
  auth: AuthSettings;
  presence: PresenceSettings;
  /** Gossip settings, with `seeds` resolved (every configured region when none are named). */
  membership: MembershipSettings;
  replication: ReplicationSettings;
  fanout: FanoutSettings;
  rebalance: RebalanceSettings;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Parses raw configuration (the `HALO_CONFIG` var) into a `HaloConfig`, or throws a `ConfigError` naming every bad field. */
export function parseConfig(raw: unknown): HaloConfig {
  const value = typeof raw === "string" ? parseJson(raw) : raw;
  const result = haloConfigSchema.safeParse(value);
  if (!result.success) {
    const details = result.error.issues
      .map((issue) => `HALO_CONFIG.${issue.path.join(".") || "(root)"}: ${issue.message}`)
      .join("; ");
    throw new ConfigError(`invalid configuration: ${details}`);
  }
  const parsed = result.data;
  const regions = Object.keys(parsed.shards) as Region[];
  const shards = parsed.shards as Partial<Record<Region, number>>;
  return {
    environment: parsed.environment,
    regions,
    shardCount(region) {
      const count = shards[region];
      if (count === undefined) throw new ConfigError(`region "${region}" is not configured`);
      return count;
    },
    defaultRegion: parsed.defaultRegion ?? (regions[0] as Region),
    allowRegionOverride: parsed.allowRegionOverride,
    limits: parsed.limits,
    auth: parsed.auth,
    presence: parsed.presence,
    membership: {
      ...parsed.membership,
      seeds: parsed.membership.seeds.length > 0 ? parsed.membership.seeds : regions,
    },
    replication: parsed.replication,
    fanout: parsed.fanout,
    rebalance: parsed.rebalance,
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ConfigError("invalid configuration: HALO_CONFIG is a string but not valid JSON");
  }
}

const cache = new WeakMap<object, HaloConfig>();

/** Parses the configuration once per environment object (the Worker's `env` lives as long as the isolate). */
export function configFromEnv(env: { HALO_CONFIG?: unknown }): HaloConfig {
  const hit = cache.get(env);
  if (hit) return hit;
  const config = parseConfig(env.HALO_CONFIG);
  cache.set(env, config);
  return config;
}
