import { z } from "zod";
import { connectionIdentitySchema } from "../auth/authenticate";

/**
 * What a shard remembers of one WebSocket across hibernation, serialised into the socket's
 * attachment (the platform caps it at 16 KiB; awareness states are capped well below that).
 */
export const connectionAttachmentSchema = z.object({
  v: z.literal(1),
  room: z.string(),
  connectionId: z.string(),
  region: z.string(),
  joinedAt: z.number(),
  identity: connectionIdentitySchema,
  /** The connection opted in to presence events on the extension channel. */
  presenceEvents: z.boolean().default(false),
  /** The awareness entries this connection owns: relay clock, the owner's own clock, state. */
  clients: z.array(
    z.object({ clientId: z.number(), clock: z.number(), ownerClock: z.number(), json: z.string() }),
  ),
});

export type ConnectionAttachment = z.infer<typeof connectionAttachmentSchema>;
