/**
 * Test helpers for the unit tier: frame builders that use y-protocols' own encoders, and a
 * `StockClient` that handles server frames the way y-websocket's `WebsocketProvider` does
 * (same y-protocols calls, same relay of every awareness change), minus the socket.
 */
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";

export const MESSAGE_SYNC = 0;
export const MESSAGE_AWARENESS = 1;
export const MESSAGE_AUTH = 2;
export const MESSAGE_QUERY_AWARENESS = 3;

export function buildFrame(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  write(encoder);
  return encoding.toUint8Array(encoder);
}

export function syncStep1Frame(doc: Y.Doc): Uint8Array {
  return buildFrame((e) => {
    encoding.writeVarUint(e, MESSAGE_SYNC);
    syncProtocol.writeSyncStep1(e, doc);
  });
}

export function syncStep2Frame(doc: Y.Doc, stateVector?: Uint8Array): Uint8Array {
  return buildFrame((e) => {
    encoding.writeVarUint(e, MESSAGE_SYNC);
    syncProtocol.writeSyncStep2(e, doc, stateVector);
  });
}

export function syncUpdateFrame(update: Uint8Array): Uint8Array {
  return buildFrame((e) => {
    encoding.writeVarUint(e, MESSAGE_SYNC);
    syncProtocol.writeUpdate(e, update);
  });
}

/** An awareness frame exactly as the stock provider builds it. */
export function awarenessFrame(
  awareness: awarenessProtocol.Awareness,
  clients: number[] = [awareness.clientID],
): Uint8Array {
  return buildFrame((e) => {
    encoding.writeVarUint(e, MESSAGE_AWARENESS);
    encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awareness, clients));
  });
}

export function queryAwarenessFrame(): Uint8Array {
  return buildFrame((e) => encoding.writeVarUint(e, MESSAGE_QUERY_AWARENESS));
}

export interface RawAwarenessEntry {
  clientId: number;
  clock: number;
  /** The state's bytes (or text, written as UTF-8). */
  state: string | Uint8Array;
}

/** An awareness payload (y-protocols layout) with arbitrary, possibly invalid, states. */
export function rawAwarenessPayload(entries: readonly RawAwarenessEntry[]): Uint8Array {
  return buildFrame((e) => {
    encoding.writeVarUint(e, entries.length);
    for (const entry of entries) {
      encoding.writeVarUint(e, entry.clientId);
      encoding.writeVarUint(e, entry.clock);
      if (typeof entry.state === "string") encoding.writeVarString(e, entry.state);
      else encoding.writeVarUint8Array(e, entry.state);
    }
  });
}

export function rawAwarenessFrame(entries: readonly RawAwarenessEntry[]): Uint8Array {
  const payload = rawAwarenessPayload(entries);
  return buildFrame((e) => {
    encoding.writeVarUint(e, MESSAGE_AWARENESS);
    encoding.writeVarUint8Array(e, payload);
  });
}

/** The payload of a server awareness frame (what `applyAwarenessUpdate` takes). */
export function awarenessPayloadOf(frame: Uint8Array): Uint8Array {
  const decoder = decoding.createDecoder(frame);
  const type = decoding.readVarUint(decoder);
  if (type !== MESSAGE_AWARENESS) throw new Error(`expected an awareness frame, got type ${type}`);
  return decoding.readVarUint8Array(decoder);
}

/** The top-level message type and, for sync frames, the sync sub-type. */
export function frameKind(frame: Uint8Array): { type: number; step?: number } {
  const decoder = decoding.createDecoder(frame);
  const type = decoding.readVarUint(decoder);
  if (type !== MESSAGE_SYNC) return { type };
  return { type, step: decoding.readVarUint(decoder) };
}

interface AwarenessChanges {
  added: number[];
  updated: number[];
  removed: number[];
}

/**
 * A simulated stock client: a `Y.Doc` and an `Awareness`, driven by server frames the way the
 * y-websocket provider drives them. Everything the provider would send goes to `outbox`.
 * Call `destroy()`: the `Awareness` runs an interval.
 */
export class StockClient {
  readonly doc: Y.Doc;
  readonly awareness: awarenessProtocol.Awareness;
  readonly outbox: Uint8Array[] = [];

  constructor(clientId?: number) {
    this.doc = new Y.Doc();
    if (clientId !== undefined) this.doc.clientID = clientId;
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    this.doc.on("update", (update: Uint8Array, origin: unknown) => {
      if (origin !== this) this.outbox.push(syncUpdateFrame(update));
    });
    this.awareness.on("update", ({ added, updated, removed }: AwarenessChanges) => {
      this.outbox.push(awarenessFrame(this.awareness, [...added, ...updated, ...removed]));
    });
  }

  get clientId(): number {
    return this.doc.clientID;
  }

  get text(): string {
    return this.doc.getText("t").toString();
  }

  /** The frames the provider sends when its socket opens. */
  openFrames(): Uint8Array[] {
    const frames = [syncStep1Frame(this.doc)];
    if (this.awareness.getLocalState() !== null) frames.push(awarenessFrame(this.awareness));
    return frames;
  }

  /** Handles one server frame like the provider's message handlers. */
  receive(frame: Uint8Array): void {
    const decoder = decoding.createDecoder(frame);
    const type = decoding.readVarUint(decoder);
    if (type === MESSAGE_SYNC) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MESSAGE_SYNC);
      syncProtocol.readSyncMessage(decoder, encoder, this.doc, this);
      if (encoding.length(encoder) > 1) this.outbox.push(encoding.toUint8Array(encoder));
    } else if (type === MESSAGE_AWARENESS) {
      awarenessProtocol.applyAwarenessUpdate(
        this.awareness,
        decoding.readVarUint8Array(decoder),
        this,
      );
    } else {
      throw new Error(`stock client got unexpected message type ${type}`);
    }
  }

  takeOutbox(): Uint8Array[] {
    return this.outbox.splice(0);
  }

  /** Insert text locally (the update lands in the outbox). */
  type(index: number, text: string): void {
    this.doc.getText("t").insert(index, text);
  }

  destroy(): void {
    this.awareness.destroy();
    this.doc.destroy();
  }
}
