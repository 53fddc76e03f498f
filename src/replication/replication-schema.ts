import { z } from "zod";
import { regionSchema } from "../config/regions";
import { roomNameSchema } from "../http/room-name";
import { leaveReasonSchema, memberSchema } from "../presence/presence-schema";
import type { MemberRecord, ReplicaMessage } from "./replica-messages";

/**
 * Replica messages as they cross between shards (RPC), checked on arrival like any boundary:
 * region names must be location hints, sizes are bounded.
 */
const version = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const bytes = z.instanceof(Uint8Array);

export const memberRecordSchema = z
  .object({
    clientId: z.number().int().nonnegative().max(0xffff_ffff),
    version,
    region: regionSchema,
    member: memberSchema.nullable(),
    awareness: z.string().nullable(),
    reason: leaveReasonSchema.optional(),
  })
  .strict() satisfies z.ZodType<MemberRecord>;

/** Most member records in one message: one region's members of a room, with room to spare. */
export const MAX_RECORDS_PER_MESSAGE = 10_000;

const base = { room: roomNameSchema, from: regionSchema };

export const replicaMessageSchema = z.discriminatedUnion("type", [
  z
    .object({
      ...base,
      type: z.literal("batch"),
      deleteSetDigest: z.number().int().min(0).max(0xffff_ffff).optional(),
      update: bytes.optional(),
      members: z.array(memberRecordSchema).max(MAX_RECORDS_PER_MESSAGE),
    })
    .strict(),
  z
    .object({
      ...base,
      type: z.literal("sync"),
      stateVector: bytes,
      members: z.array(memberRecordSchema).max(MAX_RECORDS_PER_MESSAGE),
      asOf: version,
      reply: z.boolean(),
      peers: z.array(regionSchema).max(16).optional(),
      leaving: z.boolean().optional(),
      deleteSetDigest: z.number().int().min(0).max(0xffff_ffff).optional(),
      outranked: z
        .array(z.object({ clientId: memberRecordSchema.shape.clientId, version }).strict())
        .max(MAX_RECORDS_PER_MESSAGE)
        .optional(),
      update: bytes.optional(),
    })
    .strict(),
]) satisfies z.ZodType<ReplicaMessage>;
