import type { AwarenessEntry, AwarenessLimits } from "./awareness-codec";
import { decodeAwarenessUpdate } from "./awareness-codec";
import { CloseCode } from "./close-codes";
import { type ControlMessage, controlMessageSchema } from "./extension-messages";
import { decodeUtf8, FrameReader, malformed } from "./frame-reader";
import { MessageType, SyncMessageType } from "./message-types";
import { ProtocolError } from "./protocol-error";

/** A client frame, decoded once at the edge of the room core. */
export type IncomingMessage =
  | { type: "sync-step1"; stateVector: Uint8Array }
  | { type: "sync-step2"; update: Uint8Array }
  | { type: "sync-update"; update: Uint8Array }
  | { type: "awareness"; entries: AwarenessEntry[] }
  | { type: "query-awareness" }
  | { type: "control"; message: ControlMessage };

export interface IncomingLimits extends AwarenessLimits {
  maxFrameBytes: number;
}

/**
 * Decodes one binary frame of the y-websocket protocol. Throws a `ProtocolError` (carrying the
 * close code and reason) for anything a compatible client would never send. Yjs payloads are
 * returned as views; their own validity is checked where they are applied.
 */
export function decodeIncomingMessage(frame: Uint8Array, limits: IncomingLimits): IncomingMessage {
  if (frame.byteLength > limits.maxFrameBytes) {
    throw new ProtocolError(
      CloseCode.MessageTooBig,
      `frame of ${frame.byteLength} bytes is over maxFrameBytes=${limits.maxFrameBytes}`,
    );
  }
  const reader = new FrameReader(frame);
  const type = reader.readVarUint("message type");
  switch (type) {
    case MessageType.Sync: {
      const step = reader.readVarUint("sync message type");
      const payload = reader.readVarBytes("sync payload");
      reader.expectEnd("sync message");
      if (step === SyncMessageType.Step1) return { type: "sync-step1", stateVector: payload };
      if (step === SyncMessageType.Step2) return { type: "sync-step2", update: payload };
      if (step === SyncMessageType.Update) return { type: "sync-update", update: payload };
      throw new ProtocolError(
        CloseCode.InvalidPayload,
        `malformed frame: unknown sync message type ${step}`,
      );
    }
    case MessageType.Awareness: {
      const payload = reader.readVarBytes("awareness payload");
      reader.expectEnd("awareness message");
      return { type: "awareness", entries: decodeAwarenessUpdate(payload, limits) };
    }
    case MessageType.QueryAwareness:
      reader.expectEnd("queryAwareness message");
      return { type: "query-awareness" };
    case MessageType.Halo: {
      const text = decodeUtf8(reader.readVarBytes("extension message"), "extension message");
      reader.expectEnd("extension message");
      return { type: "control", message: decodeControl(text) };
    }
    case MessageType.Auth:
      throw new ProtocolError(
        CloseCode.UnsupportedData,
        "auth messages (type 2) only flow from server to client",
      );
    default:
      throw new ProtocolError(CloseCode.UnsupportedData, `unknown message type ${type}`);
  }
}

function decodeControl(text: string): ControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw malformed("extension message is not valid JSON");
  }
  const parsed = controlMessageSchema.safeParse(value);
  if (!parsed.success) {
    throw malformed(
      `extension message is not a known control message: ${parsed.error.issues[0]?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}
