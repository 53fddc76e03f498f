import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import type { ControlMessage, ServerExtensionMessage } from "../protocol/extension-messages";
import { MessageType } from "../protocol/message-types";

/**
 * The frames the SDK builds and reads besides the y-protocols ones. The extension channel is
 * type 100 followed by one JSON text (src/protocol/extension-messages.ts); the server's
 * messages are trusted as its own, so the SDK checks only their `type` and does not ship zod.
 */
export function controlFrame(message: ControlMessage): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MessageType.Halo);
  encoding.writeVarString(encoder, JSON.stringify(message));
  return encoding.toUint8Array(encoder);
}

/** Reads an extension message after its type byte; null for one this SDK does not know. */
export function readExtension(decoder: decoding.Decoder): ServerExtensionMessage | null {
  const value: unknown = JSON.parse(decoding.readVarString(decoder));
  if (typeof value !== "object" || value === null || !("type" in value)) return null;
  return value as ServerExtensionMessage;
}
