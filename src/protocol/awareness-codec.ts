import * as encoding from "lib0/encoding";
import { CloseCode } from "./close-codes";
import { decodeUtf8, FrameReader, malformed } from "./frame-reader";
import { ProtocolError } from "./protocol-error";

export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A client's awareness state: any JSON object, or `null` once the client is gone. */
export type AwarenessState = { [key: string]: JsonValue };

/** One awareness entry as it travels: the state is kept as the JSON text it arrived in, so relaying never re-serialises it. */
export interface AwarenessEntry {
  clientId: number;
  clock: number;
  /** JSON text of the state; `"null"` means removed. */
  json: string;
}

const MAX_CLIENT_ID = 0xffff_ffff; // Yjs clientIDs are unsigned 32-bit

export interface AwarenessLimits {
  maxAwarenessStateBytes: number;
}

/**
 * Decodes the payload of an awareness message (y-protocols/awareness encoding: a count, then
 * per entry clientID, clock and JSON state) and checks each state is a JSON object or null.
 */
export function decodeAwarenessUpdate(
  payload: Uint8Array,
  limits: AwarenessLimits,
): AwarenessEntry[] {
  const reader = new FrameReader(payload);
  const count = reader.readVarUint("awareness entry count");
  const entries: AwarenessEntry[] = [];
  for (let i = 0; i < count; i++) {
    const clientId = reader.readVarUint("awareness clientID");
    if (clientId > MAX_CLIENT_ID) throw malformed(`awareness clientID ${clientId} is over 32 bits`);
    const clock = reader.readVarUint("awareness clock");
    const jsonBytes = reader.readVarBytes("awareness state");
    if (jsonBytes.byteLength > limits.maxAwarenessStateBytes) {
      throw new ProtocolError(
        CloseCode.MessageTooBig,
        `awareness state of client ${clientId} is ${jsonBytes.byteLength} bytes, over maxAwarenessStateBytes=${limits.maxAwarenessStateBytes}`,
      );
    }
    const json = decodeUtf8(jsonBytes, "awareness state");
    // One spelling of "removed" (" null" is valid JSON too), so the table can compare text.
    entries.push({ clientId, clock, json: checkState(clientId, json) === null ? "null" : json });
  }
  reader.expectEnd("awareness entries");
  return entries;
}

/** Parses a state's JSON text; throws unless it is an object or null. */
export function parseAwarenessState(json: string): AwarenessState | null {
  return JSON.parse(json) as AwarenessState | null;
}

/** Returns the parsed state, or throws unless it is a JSON object or null. */
function checkState(clientId: number, json: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw malformed(`awareness state of client ${clientId} is not valid JSON`);
  }
  if (value !== null && (typeof value !== "object" || Array.isArray(value))) {
    throw malformed(`awareness state of client ${clientId} must be a JSON object or null`);
  }
  return value;
}

/** Writes entries as an awareness update payload (y-protocols/awareness layout). */
export function writeAwarenessUpdate(
  encoder: encoding.Encoder,
  entries: readonly AwarenessEntry[],
): void {
  encoding.writeVarUint(encoder, entries.length);
  for (const entry of entries) {
    encoding.writeVarUint(encoder, entry.clientId);
    encoding.writeVarUint(encoder, entry.clock);
    encoding.writeVarString(encoder, entry.json);
  }
}
