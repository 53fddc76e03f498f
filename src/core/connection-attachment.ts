import { z } from "zod";

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
  /** The awareness entries this connection owns, with the clock last relayed for each. */
  clients: z.array(z.object({ clientId: z.number(), clock: z.number(), json: z.string() })),
});

export type ConnectionAttachment = z.infer<typeof connectionAttachmentSchema>;
