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

/**
 * The form an attachment is stored in. The platform serializes attachments with V8, which
 * keeps a string at two bytes a character as soon as one character is past U+00FF, so an
 * 8 KiB state could take 16 KiB. As UTF-8 bytes, every part costs what its UTF-8 text does,
 * and the budget in config-schema.ts (`ATTACHMENT_STATE_BUDGET_BYTES`) holds.
 */
export interface StoredAttachment {
  v: 2;
  /** UTF-8 JSON of everything but the awareness states. */
  head: Uint8Array;
  clients: Array<{ clientId: number; clock: number; ownerClock: number; json: Uint8Array }>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function toStoredAttachment(attachment: ConnectionAttachment): StoredAttachment {
  const { clients, ...head } = attachment;
  return {
    v: 2,
    head: encoder.encode(JSON.stringify(head)),
    clients: clients.map((c) => ({ ...c, json: encoder.encode(c.json) })),
  };
}

const storedSchema = z.object({
  v: z.literal(2),
  head: z.instanceof(Uint8Array),
  clients: z.array(
    z.object({
      clientId: z.number(),
      clock: z.number(),
      ownerClock: z.number(),
      json: z.instanceof(Uint8Array),
    }),
  ),
});

/** Reads a stored attachment back, checked by the schema; undefined when it is not one. */
export function fromStoredAttachment(value: unknown): ConnectionAttachment | undefined {
  const stored = storedSchema.safeParse(value);
  if (!stored.success) return undefined;
  try {
    const head: unknown = JSON.parse(decoder.decode(stored.data.head));
    const parsed = connectionAttachmentSchema.safeParse({
      ...(typeof head === "object" && head !== null ? head : {}),
      clients: stored.data.clients.map((c) => ({ ...c, json: decoder.decode(c.json) })),
    });
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
