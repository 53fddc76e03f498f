import { z } from "zod";
import { presenceEventSchema, presenceSnapshotSchema } from "../presence/presence-schema";

/**
 * Control messages a client sends on the extension channel. A connection opts in to presence
 * events with `?presence=events` on the WebSocket URL or with `presence.subscribe`; either way
 * it gets a snapshot first, then events. `presence.resync` asks for a new snapshot (after the
 * client saw a gap in the sequence numbers).
 */
export const controlMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("presence.subscribe") }).strict(),
  z.object({ type: z.literal("presence.resync") }).strict(),
]);
export type ControlMessage = z.infer<typeof controlMessageSchema>;

/** What the server sends on the extension channel. */
export const serverExtensionMessageSchema = z.discriminatedUnion("type", [
  /** A snapshot, in pages (`page` of `pages`, all with one `seq`) so a large room's fits a message. */
  z.object({
    type: z.literal("presence.snapshot"),
    snapshot: presenceSnapshotSchema,
    page: z.number().int().nonnegative(),
    pages: z.number().int().positive(),
  }),
  /** The events of one change, in sequence order. */
  z.object({ type: z.literal("presence.events"), events: z.array(presenceEventSchema) }),
]);
export type ServerExtensionMessage = z.infer<typeof serverExtensionMessageSchema>;
