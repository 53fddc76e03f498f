import * as encoding from "lib0/encoding";
import { type AwarenessEntry, writeAwarenessUpdate } from "./awareness-codec";
import type { ServerExtensionMessage } from "./extension-messages";
import { AuthMessageType, MessageType, SyncMessageType } from "./message-types";

/**
 * Builders for every frame the server sends. Each returns finished bytes, built once and
 * then sent unchanged to as many sockets as need it.
 */
export const OutgoingMessage = {
  syncStep1(stateVector: Uint8Array): Uint8Array {
    return sync(SyncMessageType.Step1, stateVector);
  },
  syncStep2(update: Uint8Array): Uint8Array {
    return sync(SyncMessageType.Step2, update);
  },
  syncUpdate(update: Uint8Array): Uint8Array {
    return sync(SyncMessageType.Update, update);
  },
  awareness(entries: readonly AwarenessEntry[]): Uint8Array {
    const inner = encoding.createEncoder();
    writeAwarenessUpdate(inner, entries);
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MessageType.Awareness);
    encoding.writeVarUint8Array(encoder, encoding.toUint8Array(inner));
    return encoding.toUint8Array(encoder);
  },
  /** A message on Halo's extension channel, for connections that opted in. */
  extension(message: ServerExtensionMessage): Uint8Array {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MessageType.Halo);
    encoding.writeVarString(encoder, JSON.stringify(message));
    return encoding.toUint8Array(encoder);
  },
  /** y-protocols/auth "permission denied": the stock provider logs the reason. */
  permissionDenied(reason: string): Uint8Array {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MessageType.Auth);
    encoding.writeVarUint(encoder, AuthMessageType.PermissionDenied);
    encoding.writeVarString(encoder, reason);
    return encoding.toUint8Array(encoder);
  },
};

function sync(step: number, payload: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MessageType.Sync);
  encoding.writeVarUint(encoder, step);
  encoding.writeVarUint8Array(encoder, payload);
  return encoding.toUint8Array(encoder);
}
