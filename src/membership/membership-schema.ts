import { z } from "zod";
import { regionSchema } from "../config/regions";
import { type GossipMessage, MAX_HOT_SHARDS, type MembershipView } from "./membership-node";
import { MEMBER_STATUSES, type RegionEntry, SHARD_HISTORY } from "./region-entry";

/**
 * The membership core's messages and views as they cross a boundary (directory-to-directory
 * RPC, the directory's answers to the Worker, `GET /v1/regions`). The core itself runs over any
 * region names; here they must be location hints. Bounds keep a hostile or broken peer's
 * message small: nine regions, a few fields each.
 */
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** A region's shard count: shard names carry at most four digits of index. */
export const shardCountSchema = z.number().int().min(1).max(1024);

const hotShardSchema = z
  .object({
    shard: z.number().int().min(0).max(1023),
    connections: count,
    rooms: count,
    messagesPerSecond: z.number().min(0).max(1e9),
  })
  .strict();

export const memberStatusSchema = z.enum(MEMBER_STATUSES);

export const regionEntrySchema = z
  .object({
    region: regionSchema,
    status: memberStatusSchema,
    incarnation: count,
    heartbeat: count,
    contentAt: count,
    shards: shardCountSchema,
    shardEpoch: count,
    previousShards: z.array(shardCountSchema).max(SHARD_HISTORY),
    load: z.object({ connections: count, rooms: count }).strict(),
    hotShards: z.array(hotShardSchema).max(MAX_HOT_SHARDS),
    changedAt: count,
    accusers: z.array(regionSchema).max(16),
  })
  .strict() satisfies z.ZodType<RegionEntry>;

const fingerprintSchema = z.number().int().min(0).max(0xffffffff);
const digestItemSchema = z.tuple([
  regionSchema,
  count,
  z.number().int().min(0).max(3),
  count,
  count,
  fingerprintSchema,
]);
/** In a `want` list, heartbeat -1 means "I know nothing of this region". */
const wantItemSchema = z.tuple([
  regionSchema,
  count,
  z.number().int().min(0).max(3),
  z.number().int().min(-1),
  count,
  fingerprintSchema,
]);
const beatSchema = z.tuple([regionSchema, count, count]);

export const gossipMessageSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("syn"),
    from: regionSchema,
    nonce: count,
    digest: z.array(digestItemSchema).max(64),
  }),
  z.object({
    kind: z.literal("ack"),
    from: regionSchema,
    nonce: count,
    entries: z.array(regionEntrySchema).max(64),
    beats: z.array(beatSchema).max(64),
    want: z.array(wantItemSchema).max(64),
  }),
  z.object({
    kind: z.literal("ack2"),
    from: regionSchema,
    entries: z.array(regionEntrySchema).max(64),
    beats: z.array(beatSchema).max(64),
  }),
]) satisfies z.ZodType<GossipMessage>;

export const membershipViewSchema = z.object({
  region: regionSchema,
  incarnation: count,
  health: count,
  entries: z.array(regionEntrySchema.extend({ lastHeardMsAgo: z.number().min(0) })),
}) satisfies z.ZodType<MembershipView>;

/** A region's table as it crosses into the Worker: region names checked. */
export type RegionTable = z.infer<typeof membershipViewSchema>;
