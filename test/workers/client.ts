import { SELF } from "cloudflare:test";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";

export const HANDSHAKE_HEADERS = {
  Upgrade: "websocket",
  Connection: "Upgrade",
  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Version": "13",
};

export interface SeenAwareness {
  clock: number;
  state: unknown;
}

/**
 * A minimal y-websocket client for tests inside workerd: it syncs a Y.Doc exactly as the stock
 * provider does (step 1 on open, answers step 1 with step 2, sends local updates) and records
 * every awareness entry and close event it receives.
 */
export class TestClient {
  readonly doc = new Y.Doc();
  readonly awareness = new Map<number, SeenAwareness>();
  readonly frames: Uint8Array[] = [];
  /** Messages received on Halo's extension channel (type 100), parsed. */
  readonly extension: Array<{ type: string; [key: string]: unknown }> = [];
  /** Text frames received (only the liveness `pong`; the protocol itself is binary). */
  readonly texts: string[] = [];
  closeEvent: { code: number; reason: string } | null = null;
  private readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (event) => {
        this.closeEvent = { code: event.code, reason: event.reason };
        resolve(this.closeEvent);
      });
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data === "string") this.texts.push(event.data);
      else this.onFrame(new Uint8Array(event.data as ArrayBuffer));
    });
    this.doc.on("update", (update: Uint8Array, origin: unknown) => {
      if (origin !== this) this.send(frame((e) => syncProtocol.writeUpdate(e, update), 0));
    });
  }

  /** Opens a client; `clientId` reuses a Yjs clientID, as a provider that reconnects does. */
  static async connect(room: string, query = "", clientId?: number): Promise<TestClient> {
    const response = await SELF.fetch(`http://halo.test/v1/rooms/${room}${query}`, {
      headers: HANDSHAKE_HEADERS,
    });
    if (!response.webSocket)
      throw new Error(`upgrade failed: ${response.status} ${await response.text()}`);
    response.webSocket.binaryType = "arraybuffer"; // workerd delivers Blobs otherwise
    response.webSocket.accept();
    const client = new TestClient(response.webSocket);
    if (clientId !== undefined) client.doc.clientID = clientId;
    client.send(frame((e) => syncProtocol.writeSyncStep1(e, client.doc), 0));
    return client;
  }

  get text(): string {
    return this.doc.getText("t").toString();
  }

  send(bytes: Uint8Array | string): void {
    // A reply to a frame that arrived while this client was closing has nowhere to go.
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(bytes);
  }

  /** Sends an awareness entry for `clientId` (defaults to this doc's clientID). */
  setAwareness(state: unknown, clock: number, clientId = this.doc.clientID): void {
    this.send(awarenessFrame([{ clientId, clock, state }]));
  }

  /** Sends a control message on the extension channel. */
  control(message: unknown): void {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 100);
    encoding.writeVarString(encoder, JSON.stringify(message));
    this.send(encoding.toUint8Array(encoder));
  }

  closedWith(): Promise<{ code: number; reason: string }> {
    return this.closed;
  }

  /** Closes cleanly (1000): for presence, a goodbye. */
  close(): void {
    this.ws.close(1000, "done");
  }

  /** Closes with a code presence treats as a dropped connection (the client will be back). */
  drop(): void {
    this.ws.close(4000, "gone without a goodbye");
  }

  private onFrame(bytes: Uint8Array): void {
    this.frames.push(bytes);
    const decoder = decoding.createDecoder(bytes);
    const type = decoding.readVarUint(decoder);
    if (type === 0) {
      const reply = encoding.createEncoder();
      encoding.writeVarUint(reply, 0);
      syncProtocol.readSyncMessage(decoder, reply, this.doc, this);
      if (encoding.length(reply) > 1) this.send(encoding.toUint8Array(reply));
    } else if (type === 1) {
      const inner = decoding.createDecoder(decoding.readVarUint8Array(decoder));
      const count = decoding.readVarUint(inner);
      for (let i = 0; i < count; i++) {
        const clientId = decoding.readVarUint(inner);
        const clock = decoding.readVarUint(inner);
        const state: unknown = JSON.parse(decoding.readVarString(inner));
        this.awareness.set(clientId, { clock, state });
      }
    } else if (type === 100) {
      this.extension.push(JSON.parse(decoding.readVarString(decoder)));
    }
  }
}

function frame(write: (encoder: encoding.Encoder) => void, type: number): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, type);
  write(encoder);
  return encoding.toUint8Array(encoder);
}

export function awarenessFrame(
  entries: Array<{ clientId: number; clock: number; state: unknown }>,
): Uint8Array {
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, entries.length);
  for (const entry of entries) {
    encoding.writeVarUint(inner, entry.clientId);
    encoding.writeVarUint(inner, entry.clock);
    encoding.writeVarString(inner, JSON.stringify(entry.state));
  }
  return frame((e) => encoding.writeVarUint8Array(e, encoding.toUint8Array(inner)), 1);
}

/** Polls `check` until it returns true (frames are delivered asynchronously), failing after `ms`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 2000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until the room's document (as its shard serves it) has this text. */
export async function untilServerText(room: string, text: string, ms = 2000): Promise<void> {
  await eventually(async () => textOf(await documentOf(room)) === text, ms, `"${text}" in ${room}`);
}

export async function documentOf(room: string, query = ""): Promise<Uint8Array> {
  const response = await SELF.fetch(`http://halo.test/v1/rooms/${room}/document${query}`);
  return new Uint8Array(await response.arrayBuffer());
}

export function textOf(update: Uint8Array): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  return doc.getText("t").toString();
}
