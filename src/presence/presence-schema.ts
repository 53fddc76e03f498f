import { z } from "zod";

/** Why a member (or a user, with its last member) left. DESIGN.md, "Presence semantics". */
export const leaveReasonSchema = z.enum([
  "left", // its client set its awareness state to null
  "closed", // its connection closed cleanly
  "timeout", // its connection dropped and the grace ran out
  "region_lost", // its region was declared dead
  "kicked", // an operator or the server removed it
  "moved", // its room moved to another shard
]);
export type LeaveReason = z.infer<typeof leaveReasonSchema>;

export const memberStatusSchema = z.enum(["present", "reconnecting"]);
export type MemberStatus = z.infer<typeof memberStatusSchema>;

/**
 * One member: a client's awareness entry joined with what the server knows of its connection.
 * `state` is the client's own; every other field is the server's and cannot be set by it.
 */
export const memberSchema = z.object({
  clientId: z.number().int().nonnegative(),
  userId: z.string(),
  name: z.string().optional(),
  user: z.record(z.string(), z.unknown()).optional(),
  connectionId: z.string(),
  region: z.string(),
  /** When the member first joined (Unix ms); kept across reconnects within the grace. */
  joinedAt: z.number(),
  /** When its state or status last changed (Unix ms). */
  updatedAt: z.number(),
  status: memberStatusSchema,
  /** While `reconnecting`: when the grace ends and the member leaves with `timeout` (Unix ms). */
  reconnectingUntil: z.number().optional(),
  state: z.record(z.string(), z.unknown()),
});
export type Member = z.infer<typeof memberSchema>;

/** One user: every member that shares a `userId` (two tabs are two members, one user). */
export const userSchema = z.object({
  userId: z.string(),
  name: z.string().optional(),
  user: z.record(z.string(), z.unknown()).optional(),
  /** `present` while any of its members is. */
  status: memberStatusSchema,
  /** When its first member joined (Unix ms). */
  joinedAt: z.number(),
  /** How many members (connections' clients) it has. */
  connections: z.number().int().nonnegative(),
  /** Its members' clientIDs, ascending. */
  clientIds: z.array(z.number().int().nonnegative()),
});
export type User = z.infer<typeof userSchema>;

const eventBase = { seq: z.number().int().nonnegative(), at: z.number() };

/**
 * A presence change. Every event of a room takes the next sequence number, so a subscriber
 * that sees a gap knows it missed something and asks for a snapshot.
 */
export const presenceEventSchema = z.discriminatedUnion("type", [
  z.object({ ...eventBase, type: z.literal("member.join"), member: memberSchema }),
  z.object({ ...eventBase, type: z.literal("member.update"), member: memberSchema }),
  z.object({ ...eventBase, type: z.literal("member.status"), member: memberSchema }),
  z.object({
    ...eventBase,
    type: z.literal("member.leave"),
    member: memberSchema,
    reason: leaveReasonSchema,
  }),
  z.object({ ...eventBase, type: z.literal("user.join"), user: userSchema }),
  z.object({ ...eventBase, type: z.literal("user.update"), user: userSchema }),
  z.object({ ...eventBase, type: z.literal("user.status"), user: userSchema }),
  z.object({
    ...eventBase,
    type: z.literal("user.leave"),
    user: userSchema,
    reason: leaveReasonSchema,
  }),
]);
export type PresenceEvent = z.infer<typeof presenceEventSchema>;
export type PresenceEventType = PresenceEvent["type"];

/** Everything present in a room at one sequence number. */
export const presenceSnapshotSchema = z.object({
  seq: z.number().int().nonnegative(),
  members: z.array(memberSchema),
  users: z.array(userSchema),
});
export type PresenceSnapshot = z.infer<typeof presenceSnapshotSchema>;
