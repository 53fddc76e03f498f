import { z } from "zod";
import { MAX_TOKEN_CHARS } from "../auth/token-limits";
import { presenceEventSchema, presenceSnapshotSchema } from "../presence/presence-schema";

/**
 * Control messages a client sends on the extension channel. A connection opts in to presence
 * events with `?presence=events` on the WebSocket URL or with `presence.subscribe`; either way
 * it gets a snapshot first, then events. `presence.resync` asks for a new snapshot (after the
 * client saw a gap in the sequence numbers). `auth.refresh` replaces the connection's token
 * on the open socket (same user; new expiry and rights), so a long session never reconnects
 * for a token and its presence never flickers.
 */
export const controlMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("presence.subscribe") }).strict(),
  z.object({ type: z.literal("presence.resync") }).strict(),
  z
    .object({ type: z.literal("auth.refresh"), token: z.string().min(1).max(MAX_TOKEN_CHARS) })
    .strict(),
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
  /** An `auth.refresh` was accepted: the connection now expires at `expiresAt` (Unix ms; null: never). */
  z.object({ type: z.literal("auth.refreshed"), expiresAt: z.number().nullable() }),
]);
export type ServerExtensionMessage = z.infer<typeof serverExtensionMessageSchema>;
