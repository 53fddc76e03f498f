import { z } from "zod";
import { regionEntrySchema, shardCountSchema } from "../membership/membership-schema";
import { memberSchema, presenceEventSchema, userSchema } from "../presence/presence-schema";

/**
 * The REST API's response bodies as zod schemas: the OpenAPI document is generated from them
 * (openapi.ts), and the workerd tests parse real responses with them, so the document cannot
 * drift from what the Worker answers.
 */
export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    field: z.string().optional(),
    limit: z.object({ name: z.string(), value: z.number() }).optional(),
  }),
});

export const healthSchema = z.object({
  ok: z.literal(true),
  environment: z.enum(["development", "production"]),
  regions: z.array(z.object({ region: z.string(), shards: z.number().int() })),
});

/** `POST /v1/admin/regions/:region/shards`: the region's new shard count. */
export const resizeRequestSchema = z
  .object({
    shards: shardCountSchema.describe("the region's new shard count (1 to 1024)"),
  })
  .strict();

/** `GET /v1/regions`: the membership table as the nearest directory sees it. */
export const regionsResponseSchema = z.object({
  answeredBy: z.string(),
  incarnation: z.number().int(),
  health: z.number().int(),
  clientRegion: z.string(),
  regions: z.array(
    regionEntrySchema.extend({
      lastHeardMsAgo: z.number(),
      configured: z.boolean(),
      /** For a drained (`left`) region: `draining` while it still has connections, then `empty`. */
      drain: z.enum(["draining", "empty"]).nullable(),
    }),
  ),
});

const whereSchema = { room: z.string(), region: z.string(), shard: z.string() };

export const roomSummarySchema = z.object({
  ...whereSchema,
  connections: z.number().int(),
  members: z.number().int(),
  documentBytes: z.number().int(),
});

const countsSchema = z.object({
  version: z.number().int(),
  counts: z.object({
    members: z.number().int(),
    users: z.number().int(),
    reconnecting: z.number().int(),
  }),
});
const membersPageSchema = z.object({
  version: z.number().int(),
  view: z.literal("members"),
  total: z.number().int(),
  members: z.array(memberSchema),
  nextCursor: z.string().optional(),
});
const usersPageSchema = z.object({
  version: z.number().int(),
  view: z.literal("users"),
  total: z.number().int(),
  users: z.array(userSchema),
  nextCursor: z.string().optional(),
});

/** One room's presence, as `presencePage` builds it. */
export const presencePageSchema = z.union([countsSchema, membersPageSchema, usersPageSchema]);

/** Which regions a presence answer came from, and how fresh each one's part is. */
const sourcesSchema = {
  consistency: z.enum(["local", "all"]),
  sources: z.array(
    z.object({
      region: z.string(),
      members: z.number().int(),
      heardAt: z.number().nullable(),
      ageMs: z.number().nullable(),
      answered: z.boolean().optional(),
    }),
  ),
};

export const presenceResponseSchema = z.union([
  countsSchema.extend(whereSchema).extend(sourcesSchema),
  membersPageSchema.extend(whereSchema).extend(sourcesSchema),
  usersPageSchema.extend(whereSchema).extend(sourcesSchema),
]);

export const historyResponseSchema = z.object({
  room: z.string(),
  version: z.number().int(),
  events: z.array(presenceEventSchema),
  nextCursor: z.string().optional(),
});

export const multiRoomResponseSchema = z.object({
  results: z.record(z.string(), z.union([presencePageSchema, errorBodySchema])),
});
