import { z } from "zod";
import { memberSchema, presenceEventSchema } from "../presence/presence-schema";
import type { HandOff } from "./room-handoff";

/**
 * A hand-off as it crosses between two shards of a region (RPC): checked like any answer from
 * another object, so a broken or older shard cannot write garbage into the new owner's storage.
 */
export const handOffSchema = z.discriminatedUnion("held", [
  z.object({ held: z.literal(false), reason: z.enum(["owner", "empty"]) }),
  z.object({
    held: z.literal(true),
    update: z.instanceof(Uint8Array),
    presence: z.object({
      upsert: z.array(memberSchema),
      remove: z.array(z.number().int()).max(0),
      seq: z.number().int().min(0),
      history: z.array(presenceEventSchema),
      outbox: z.array(presenceEventSchema).max(0),
    }),
  }),
]) satisfies z.ZodType<HandOff>;

/** What one shard did when told to rebalance (`POST /v1/admin/regions/:region/shards`, drain). */
export const rebalanceReportSchema = z.object({
  shard: z.number().int().min(0),
  epoch: z.number().int().min(0),
  /** Rooms stored here that another shard owns at this epoch, and whether each move finished. */
  handedAway: z.number().int().min(0),
  pending: z.number().int().min(0),
  /** Sockets closed with `moved` (the region is drained). */
  socketsMoved: z.number().int().min(0),
});

export type RebalanceReport = z.infer<typeof rebalanceReportSchema>;
