import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { afterEach, describe, expect, it } from "vitest";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import { MAX_TOKEN_CHARS } from "../../src/auth/token-limits";
import {
  type AwarenessEntry,
  decodeAwarenessUpdate,
  parseAwarenessState,
} from "../../src/protocol/awareness-codec";
import { CloseCode, closeReason } from "../../src/protocol/close-codes";
import { FrameReader } from "../../src/protocol/frame-reader";
import {
  decodeIncomingMessage,
  type IncomingLimits,
  type IncomingMessage,
} from "../../src/protocol/incoming-message";
import { OutgoingMessage } from "../../src/protocol/outgoing-message";
import { ProtocolError } from "../../src/protocol/protocol-error";
import {
  awarenessFrame,
  awarenessPayloadOf,
  buildFrame,
  MESSAGE_AWARENESS,
  MESSAGE_SYNC,
  queryAwarenessFrame,
  rawAwarenessFrame,
  syncStep1Frame,
  syncStep2Frame,
  syncUpdateFrame,
} from "./stock-client";

const LIMITS: IncomingLimits = { maxFrameBytes: 4096, maxAwarenessStateBytes: 256 };

const destroyers: Array<() => void> = [];
afterEach(() => {
  for (const destroy of destroyers.splice(0)) destroy();
});

function newAwareness(doc = new Y.Doc()): awarenessProtocol.Awareness {
  const awareness = new awarenessProtocol.Awareness(doc);
  destroyers.push(() => awareness.destroy());
  return awareness;
}

function docWithText(text: string, clientId?: number): Y.Doc {
  const doc = new Y.Doc();
  if (clientId !== undefined) doc.clientID = clientId;
  doc.getText("t").insert(0, text);
  return doc;
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

/** Decodes and returns the ProtocolError the frame must produce. */
function protocolErrorOf(frame: Uint8Array, limits: IncomingLimits = LIMITS): ProtocolError {
  try {
    decodeIncomingMessage(frame, limits);
  } catch (error) {
    if (error instanceof ProtocolError) return error;
    throw new Error(`expected a ProtocolError, got ${String(error)}`);
  }
  throw new Error("expected the frame to be rejected, but it decoded");
}

function expectRejected(frame: Uint8Array, code: number, reason: RegExp, limits = LIMITS): void {
  const error = protocolErrorOf(frame, limits);
  expect(error.code).toBe(code);
  expect(error.reason).toMatch(reason);
  expect(new TextEncoder().encode(error.reason).byteLength).toBeLessThanOrEqual(123);
}

function decode(frame: Uint8Array): IncomingMessage {
  return decodeIncomingMessage(frame, LIMITS);
}

function entry(clientId: number, clock: number, state: unknown): AwarenessEntry {
  return { clientId, clock, json: JSON.stringify(state) };
}

describe("decodeIncomingMessage: valid frames from the stock encoders", () => {
  it("decodes sync step 1 (writeSyncStep1) to the document's state vector", () => {
    const doc = docWithText("hello", 7);
    const message = decode(syncStep1Frame(doc));
    expect(message.type).toBe("sync-step1");
    if (message.type !== "sync-step1") return;
    expect(message.stateVector).toEqual(Y.encodeStateVector(doc));
    expect(Y.decodeStateVector(message.stateVector).get(7)).toBe(5);
  });

  it("decodes sync step 1 of an empty document", () => {
    const message = decode(syncStep1Frame(new Y.Doc()));
    expect(message).toEqual({ type: "sync-step1", stateVector: Y.encodeStateVector(new Y.Doc()) });
  });

  it("decodes sync step 2 (writeSyncStep2) to an update that rebuilds the document", () => {
    const doc = docWithText("step two");
    const message = decode(syncStep2Frame(doc));
    expect(message.type).toBe("sync-step2");
    if (message.type !== "sync-step2") return;
    const replica = new Y.Doc();
    Y.applyUpdate(replica, message.update);
    expect(replica.getText("t").toString()).toBe("step two");
  });

  it("decodes a sync update (writeUpdate) byte for byte", () => {
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    doc.on("update", (update: Uint8Array) => updates.push(update));
    doc.getText("t").insert(0, "x");
    const update = updates[0] as Uint8Array;
    const message = decode(syncUpdateFrame(update));
    expect(message).toEqual({ type: "sync-update", update });
  });

  it("decodes an awareness update encoded from a real Awareness", () => {
    const doc = new Y.Doc();
    doc.clientID = 123456;
    const awareness = newAwareness(doc);
    awareness.setLocalState({ user: { name: "Ada", color: "#ff0" }, cursor: null });
    const message = decode(awarenessFrame(awareness));
    expect(message.type).toBe("awareness");
    if (message.type !== "awareness") return;
    expect(message.entries).toHaveLength(1);
    const [only] = message.entries;
    expect(only?.clientId).toBe(123456);
    expect(only?.clock).toBe(awareness.meta.get(123456)?.clock);
    expect(parseAwarenessState(only?.json ?? "")).toEqual({
      user: { name: "Ada", color: "#ff0" },
      cursor: null,
    });
  });

  it("decodes a removal (null state) from removeAwarenessStates", () => {
    const awareness = newAwareness();
    awareness.setLocalState({ a: 1 });
    const clock = awareness.meta.get(awareness.clientID)?.clock ?? -1;
    awareness.setLocalState(null);
    const message = decode(awarenessFrame(awareness));
    expect(message).toEqual({
      type: "awareness",
      entries: [{ clientId: awareness.clientID, clock: clock + 1, json: "null" }],
    });
  });

  it("decodes several awareness entries in one frame, in order", () => {
    const frame = rawAwarenessFrame([
      { clientId: 1, clock: 3, state: '{"a":1}' },
      { clientId: 2, clock: 0, state: "null" },
      { clientId: 0xffff_ffff, clock: 9, state: "{}" },
    ]);
    expect(decode(frame)).toEqual({
      type: "awareness",
      entries: [
        { clientId: 1, clock: 3, json: '{"a":1}' },
        { clientId: 2, clock: 0, json: "null" },
        { clientId: 0xffff_ffff, clock: 9, json: "{}" },
      ],
    });
  });

  it("decodes an awareness update with no entries", () => {
    expect(decode(rawAwarenessFrame([]))).toEqual({ type: "awareness", entries: [] });
  });

  it("keeps the state's JSON text as sent (no re-serialisation)", () => {
    const text = '{ "b" : 2,  "a":"\\u00e9" }';
    const message = decode(rawAwarenessFrame([{ clientId: 5, clock: 1, state: text }]));
    expect(message).toEqual({
      type: "awareness",
      entries: [{ clientId: 5, clock: 1, json: text }],
    });
  });

  it.each([
    ["leading whitespace", " null"],
    ["trailing whitespace", "null "],
    ["tabs and newlines", "\n\tnull\r\n"],
  ])('spells a null state written with %s as exactly "null"', (_what, state) => {
    const frame = rawAwarenessFrame([
      { clientId: 5, clock: 1, state },
      { clientId: 6, clock: 2, state: " { } " },
    ]);
    expect(decode(frame)).toEqual({
      type: "awareness",
      entries: [
        { clientId: 5, clock: 1, json: "null" },
        // Only null is normalised: an object keeps the text it came in.
        { clientId: 6, clock: 2, json: " { } " },
      ],
    });
  });

  it("decodes queryAwareness", () => {
    expect(decode(queryAwarenessFrame())).toEqual({ type: "query-awareness" });
  });

  it("accepts a frame of exactly maxFrameBytes and a state of exactly maxAwarenessStateBytes", () => {
    const state = JSON.stringify({ pad: "x".repeat(LIMITS.maxAwarenessStateBytes - 10) });
    expect(new TextEncoder().encode(state).byteLength).toBe(LIMITS.maxAwarenessStateBytes);
    const frame = rawAwarenessFrame([{ clientId: 1, clock: 1, state }]);
    const message = decodeIncomingMessage(frame, { ...LIMITS, maxFrameBytes: frame.byteLength });
    expect(message.type).toBe("awareness");
  });

  it("accepts a multi-byte varint message type encoding of a known type (lib0 writes minimal, but LEB128 allows padding)", () => {
    // 0x80 0x00 is a non-minimal encoding of 0; lib0's decoder reads it as 0 as well.
    const frame = bytes(0x80, 0x00, 0x00, 0x00);
    const lib0 = decoding.createDecoder(frame);
    expect(decoding.readVarUint(lib0)).toBe(0);
    expect(decode(frame)).toEqual({ type: "sync-step1", stateVector: new Uint8Array(0) });
  });
});

describe("decodeIncomingMessage: rejected frames", () => {
  it("rejects an empty frame: truncated varint (message type), 1007", () => {
    expectRejected(new Uint8Array(0), 1007, /truncated varint \(message type\)/);
  });

  it("rejects a message type whose varint never ends", () => {
    expectRejected(bytes(0x80), 1007, /truncated varint \(message type\)/);
    expectRejected(bytes(0xff, 0xff), 1007, /truncated varint \(message type\)/);
  });

  it("rejects a varint longer than 53 bits", () => {
    expectRejected(new Uint8Array(9).fill(0xff), 1007, /longer than 53 bits/);
  });

  it("rejects a sync frame without a sub-type: truncated varint (sync message type)", () => {
    expectRejected(bytes(MESSAGE_SYNC), 1007, /truncated varint \(sync message type\)/);
    expectRejected(bytes(MESSAGE_SYNC, 0x81), 1007, /truncated varint \(sync message type\)/);
  });

  it("rejects a sync frame without a payload length: truncated varint (sync payload length)", () => {
    expectRejected(bytes(MESSAGE_SYNC, 2), 1007, /truncated varint \(sync payload length\)/);
    expectRejected(bytes(MESSAGE_SYNC, 2, 0x85), 1007, /truncated varint \(sync payload length\)/);
  });

  it("rejects a payload length past the end of the frame", () => {
    expectRejected(
      bytes(MESSAGE_SYNC, 2, 5, 1, 2),
      1007,
      /sync payload claims 5 bytes but 2 remain/,
    );
  });

  it("rejects a truncated stock sync frame (last byte cut off)", () => {
    const frame = syncStep2Frame(docWithText("truncate me"));
    expectRejected(frame.subarray(0, frame.byteLength - 1), 1007, /sync payload claims \d+ bytes/);
  });

  it("rejects trailing bytes after a sync message", () => {
    const frame = syncUpdateFrame(bytes(0, 0));
    const padded = new Uint8Array(frame.byteLength + 2);
    padded.set(frame);
    expectRejected(padded, 1007, /2 trailing bytes after sync message/);
  });

  it("rejects trailing bytes after queryAwareness and after an awareness message", () => {
    expectRejected(bytes(3, 0), 1007, /1 trailing bytes after queryAwareness message/);
    const frame = rawAwarenessFrame([]);
    expectRejected(bytes(...frame, 7), 1007, /trailing bytes after awareness message/);
  });

  it("rejects an unknown message type with 1003 and names it", () => {
    expectRejected(bytes(4), 1003, /unknown message type 4/);
    expectRejected(bytes(0xac, 0x02), 1003, /unknown message type 300/);
  });

  it("rejects an auth message (type 2) from a client with 1003", () => {
    expectRejected(bytes(2, 0, 0), 1003, /auth/);
  });

  it("rejects an unknown sync sub-type with 1007 and names it", () => {
    expectRejected(bytes(MESSAGE_SYNC, 3, 0), 1007, /unknown sync message type 3/);
  });

  it("rejects a frame over maxFrameBytes with 1009 before reading it", () => {
    const frame = new Uint8Array(LIMITS.maxFrameBytes + 1); // all zeros: would decode otherwise
    expectRejected(frame, 1009, /4097 bytes is over maxFrameBytes=4096/);
  });

  it("rejects awareness state that is not JSON with 1007", () => {
    const frame = rawAwarenessFrame([{ clientId: 9, clock: 1, state: '{"a":' }]);
    expectRejected(frame, 1007, /client 9 is not valid JSON/);
  });

  it.each([
    ["a number", "42"],
    ["a string", '"hello"'],
    ["an array", "[1,2]"],
    ["a boolean", "true"],
  ])("rejects an awareness state that is %s with 1007", (_what, state) => {
    const frame = rawAwarenessFrame([{ clientId: 9, clock: 1, state }]);
    expectRejected(frame, 1007, /client 9 must be a JSON object or null/);
  });

  it("rejects an awareness state over maxAwarenessStateBytes with 1009", () => {
    const state = JSON.stringify({ pad: "x".repeat(LIMITS.maxAwarenessStateBytes) });
    const frame = rawAwarenessFrame([{ clientId: 9, clock: 1, state }]);
    expectRejected(frame, 1009, /client 9 is \d+ bytes, over maxAwarenessStateBytes=256/);
  });

  it("rejects a clientID over 32 bits", () => {
    const frame = rawAwarenessFrame([{ clientId: 2 ** 32, clock: 1, state: "{}" }]);
    expectRejected(frame, 1007, /clientID 4294967296 is over 32 bits/);
  });

  // The codec no longer caps awareness clocks at 2^48 (that kept owner clock × 4 exact in a
  // double): relay clocks are the server's own, so any clock a varint holds exactly is accepted.
  it("rejects no awareness clock a varint holds exactly: up to 2^53 - 1, a removal's included", () => {
    const max = Number.MAX_SAFE_INTEGER;
    const frame = rawAwarenessFrame([
      { clientId: 8, clock: 2 ** 48 + 1, state: "{}" },
      { clientId: 9, clock: max, state: '{"a":1}' },
      { clientId: 10, clock: max, state: "null" },
    ]);
    expect(decode(frame)).toEqual({
      type: "awareness",
      entries: [entry(8, 2 ** 48 + 1, {}), entry(9, max, { a: 1 }), entry(10, max, null)],
    });
    // An echo of such a clock goes back unchanged, and y-protocols reads it as sent.
    const echo = OutgoingMessage.awareness([entry(9, max, { a: 1 })]);
    expect(decode(echo)).toEqual({ type: "awareness", entries: [entry(9, max, { a: 1 })] });
    const client = newAwareness();
    awarenessProtocol.applyAwarenessUpdate(client, awarenessPayloadOf(echo), "server");
    expect(client.meta.get(9)?.clock).toBe(max);
    expect(client.getStates().get(9)).toEqual({ a: 1 });
  });

  it("rejects an awareness state that is not valid UTF-8", () => {
    const frame = rawAwarenessFrame([
      { clientId: 9, clock: 1, state: bytes(0x22, 0xff, 0xfe, 0x22) },
    ]);
    expectRejected(frame, 1007, /awareness state is not valid UTF-8/);
  });

  it("rejects an awareness payload that claims more entries than it holds", () => {
    const payload = bytes(2, 1, 1, 2, 0x7b, 0x7d); // count 2, then one entry {}
    const frame = buildFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_AWARENESS);
      encoding.writeVarUint8Array(e, payload);
    });
    expectRejected(frame, 1007, /truncated varint \(awareness clientID\)/);
  });

  it("rejects an awareness payload with bytes after its entries", () => {
    const payload = bytes(1, 1, 1, 2, 0x7b, 0x7d, 0);
    const frame = buildFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_AWARENESS);
      encoding.writeVarUint8Array(e, payload);
    });
    expectRejected(frame, 1007, /1 trailing bytes after awareness entries/);
  });

  it("rejects an awareness frame whose payload length is missing or too long", () => {
    expectRejected(bytes(MESSAGE_AWARENESS), 1007, /truncated varint \(awareness payload length\)/);
    expectRejected(bytes(MESSAGE_AWARENESS, 9, 0), 1007, /awareness payload claims 9 bytes/);
  });

  it("rejects a state string whose length runs past the payload", () => {
    const payload = bytes(1, 1, 1, 50, 0x7b, 0x7d);
    const frame = buildFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_AWARENESS);
      encoding.writeVarUint8Array(e, payload);
    });
    expectRejected(frame, 1007, /awareness state claims 50 bytes but 2 remain/);
  });
});

describe("decodeIncomingMessage: control messages (extension channel)", () => {
  function controlFrame(message: unknown): Uint8Array {
    return buildFrame((e) => {
      encoding.writeVarUint(e, 100);
      encoding.writeVarString(e, JSON.stringify(message));
    });
  }
  const BIG = { ...LIMITS, maxFrameBytes: 64 * 1024 };

  it("decodes auth.refresh with its token", () => {
    expect(decode(controlFrame({ type: "auth.refresh", token: "a.b.c" }))).toEqual({
      type: "control",
      message: { type: "auth.refresh", token: "a.b.c" },
    });
    const longest = "x".repeat(MAX_TOKEN_CHARS);
    expect(
      decodeIncomingMessage(controlFrame({ type: "auth.refresh", token: longest }), BIG),
    ).toMatchObject({ message: { token: longest } });
  });

  it("rejects an auth.refresh without a token, with an empty or over-long one, or with extra fields, with 1007", () => {
    const unknown = /not a known control message/;
    expectRejected(controlFrame({ type: "auth.refresh" }), 1007, unknown);
    expectRejected(controlFrame({ type: "auth.refresh", token: "" }), 1007, unknown);
    expectRejected(controlFrame({ type: "auth.refresh", token: 42 }), 1007, unknown);
    expectRejected(controlFrame({ type: "auth.refresh", token: "t", user: "x" }), 1007, unknown);
    expectRejected(
      controlFrame({ type: "auth.refresh", token: "x".repeat(MAX_TOKEN_CHARS + 1) }),
      1007,
      unknown,
      BIG,
    );
  });
});

describe("decodeAwarenessUpdate", () => {
  it("round-trips the payload y-protocols encodes for several clients", () => {
    const a = newAwareness();
    const b = newAwareness();
    a.setLocalState({ n: "a" });
    b.setLocalState({ n: "b" });
    awarenessProtocol.applyAwarenessUpdate(
      a,
      awarenessProtocol.encodeAwarenessUpdate(b, [b.clientID]),
      null,
    );
    const payload = awarenessProtocol.encodeAwarenessUpdate(a, [a.clientID, b.clientID]);
    const entries = decodeAwarenessUpdate(payload, LIMITS);
    expect(entries.map((e) => [e.clientId, parseAwarenessState(e.json)])).toEqual([
      [a.clientID, { n: "a" }],
      [b.clientID, { n: "b" }],
    ]);
  });
});

describe("FrameReader", () => {
  it("reads lib0 varints of every size up to 2^53 - 1", () => {
    const values = [0, 1, 127, 128, 16383, 16384, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER];
    const frame = buildFrame((e) => {
      for (const v of values) encoding.writeVarUint(e, v);
    });
    const reader = new FrameReader(frame);
    expect(values.map(() => reader.readVarUint("v"))).toEqual(values);
    expect(reader.remaining).toBe(0);
    expect(() => reader.expectEnd("values")).not.toThrow();
  });

  it("reads var strings written by lib0, including unicode", () => {
    const frame = buildFrame((e) => encoding.writeVarString(e, "héllo 🌍"));
    expect(new FrameReader(frame).readVarString("s")).toBe("héllo 🌍");
  });

  it("readVarBytes returns a view bounded by its length (never the neighbouring bytes)", () => {
    const reader = new FrameReader(bytes(2, 10, 11, 12));
    const view = reader.readVarBytes("x");
    expect(Array.from(view)).toEqual([10, 11]);
    expect(reader.remaining).toBe(1);
  });
});

describe("OutgoingMessage frames decode with y-protocols", () => {
  function readSync(frame: Uint8Array, doc: Y.Doc): { kind: number; reply: Uint8Array } {
    const decoder = decoding.createDecoder(frame);
    expect(decoding.readVarUint(decoder)).toBe(MESSAGE_SYNC);
    const reply = encoding.createEncoder();
    const kind = syncProtocol.readSyncMessage(decoder, reply, doc, "server");
    expect(decoding.hasContent(decoder)).toBe(false);
    return { kind, reply: encoding.toUint8Array(reply) };
  }

  it("syncStep1: the client answers with a step 2 holding exactly what the server lacks", () => {
    const server = docWithText("abc", 1);
    const client = new Y.Doc();
    Y.applyUpdate(client, Y.encodeStateAsUpdate(server));
    client.getText("t").insert(3, "def");
    const { kind, reply } = readSync(
      OutgoingMessage.syncStep1(Y.encodeStateVector(server)),
      client,
    );
    expect(kind).toBe(syncProtocol.messageYjsSyncStep1);
    const step2 = decoding.createDecoder(reply);
    expect(decoding.readVarUint(step2)).toBe(syncProtocol.messageYjsSyncStep2);
    Y.applyUpdate(server, decoding.readVarUint8Array(step2));
    expect(server.getText("t").toString()).toBe("abcdef");
  });

  it("syncStep2 and syncUpdate apply into a Y.Doc", () => {
    const source = docWithText("from server");
    const client = new Y.Doc();
    const step2 = readSync(OutgoingMessage.syncStep2(Y.encodeStateAsUpdate(source)), client);
    expect(step2.kind).toBe(syncProtocol.messageYjsSyncStep2);
    expect(client.getText("t").toString()).toBe("from server");

    const before = Y.encodeStateVector(source);
    source.getText("t").insert(0, ">> ");
    const update = readSync(
      OutgoingMessage.syncUpdate(Y.encodeStateAsUpdate(source, before)),
      client,
    );
    expect(update.kind).toBe(syncProtocol.messageYjsUpdate);
    expect(client.getText("t").toString()).toBe(">> from server");
  });

  it("awareness entries (unicode states and null removals) apply into an Awareness", () => {
    const client = newAwareness();
    const frame1 = OutgoingMessage.awareness([
      entry(11, 1, { user: "Zoë ✨", emoji: "👩🏽‍💻", nested: { deep: [1, "二"] } }),
      entry(12, 4, { user: "Bob" }),
    ]);
    awarenessProtocol.applyAwarenessUpdate(client, awarenessPayloadOf(frame1), "server");
    expect(client.getStates().get(11)).toEqual({
      user: "Zoë ✨",
      emoji: "👩🏽‍💻",
      nested: { deep: [1, "二"] },
    });
    expect(client.getStates().get(12)).toEqual({ user: "Bob" });
    expect(client.meta.get(12)?.clock).toBe(4);

    const frame2 = OutgoingMessage.awareness([{ clientId: 12, clock: 5, json: "null" }]);
    awarenessProtocol.applyAwarenessUpdate(client, awarenessPayloadOf(frame2), "server");
    expect(client.getStates().has(12)).toBe(false);
    expect(client.getStates().has(11)).toBe(true);
  });

  it("awareness entries survive a round trip through decodeIncomingMessage unchanged", () => {
    const entries: AwarenessEntry[] = [
      entry(1, 0, { name: "日本語", cursor: { anchor: 3, head: 7 } }),
      { clientId: 2, clock: 99, json: "null" },
      entry(0xffff_ffff, 2 ** 40, {}),
    ];
    expect(decode(OutgoingMessage.awareness(entries))).toEqual({ type: "awareness", entries });
  });

  it("an empty awareness list is a valid frame y-protocols accepts", () => {
    const client = newAwareness();
    const frame = OutgoingMessage.awareness([]);
    expect(() =>
      awarenessProtocol.applyAwarenessUpdate(client, awarenessPayloadOf(frame), "server"),
    ).not.toThrow();
    expect(decode(frame)).toEqual({ type: "awareness", entries: [] });
  });

  it("sync frames round-trip through decodeIncomingMessage", () => {
    const payload = bytes(1, 2, 3);
    expect(decode(OutgoingMessage.syncStep1(payload))).toEqual({
      type: "sync-step1",
      stateVector: payload,
    });
    expect(decode(OutgoingMessage.syncStep2(payload))).toEqual({
      type: "sync-step2",
      update: payload,
    });
    expect(decode(OutgoingMessage.syncUpdate(payload))).toEqual({
      type: "sync-update",
      update: payload,
    });
  });
});

describe("closeReason and ProtocolError", () => {
  const utf8Length = (text: string): number => new TextEncoder().encode(text).byteLength;

  it("keeps a reason of up to 123 bytes unchanged", () => {
    const text = "r".repeat(123);
    expect(closeReason(text)).toBe(text);
    expect(closeReason("short")).toBe("short");
  });

  it("trims an ASCII reason of 124 bytes to at most 123 bytes ending in an ellipsis", () => {
    const trimmed = closeReason("r".repeat(124));
    expect(utf8Length(trimmed)).toBeLessThanOrEqual(123);
    expect(trimmed.endsWith("…")).toBe(true);
    expect(trimmed).toBe(`${"r".repeat(120)}…`);
  });

  it("trims a multi-byte reason to at most 123 UTF-8 bytes", () => {
    const trimmed = closeReason("é".repeat(200));
    expect(utf8Length(trimmed)).toBeLessThanOrEqual(123);
    expect(trimmed.startsWith("é".repeat(50))).toBe(true);
    expect(trimmed.endsWith("…")).toBe(true);
  });

  // Regression: closeReason used to trim one UTF-16 code unit at a time and measure with
  // TextEncoder, which counts a lone high surrogate as U+FFFD (3 bytes), so the cut could stop
  // between the halves of a pair and the reason ended in a lone surrogate, sent as U+FFFD.
  it("never splits a surrogate pair when trimming (cut lands inside an emoji)", () => {
    // 117 ASCII bytes, then 4-byte emoji: the limit is reached between the two halves of one.
    const trimmed = closeReason(`${"a".repeat(117)}${"😀".repeat(10)}`);
    expect(utf8Length(trimmed)).toBeLessThanOrEqual(123);
    // A lone high surrogate would go on the wire as U+FFFD.
    expect(new TextDecoder().decode(new TextEncoder().encode(trimmed))).toBe(trimmed);
    expect(trimmed).toBe(`${"a".repeat(117)}…`);
  });

  it("trims a reason made only of 4-byte characters to whole characters", () => {
    const trimmed = closeReason("😀".repeat(40));
    expect(trimmed).toBe(`${"😀".repeat(30)}…`); // 30 × 4 + 3 = 123 bytes
    expect(utf8Length(trimmed)).toBe(123);
    expect(new TextDecoder().decode(new TextEncoder().encode(trimmed))).toBe(trimmed);
  });

  it("ProtocolError keeps the full message but a trimmed reason", () => {
    const long = `malformed frame: ${"x".repeat(300)}`;
    const error = new ProtocolError(CloseCode.InvalidPayload, long);
    expect(error.message).toBe(long);
    expect(error.code).toBe(1007);
    expect(utf8Length(error.reason)).toBeLessThanOrEqual(123);
    expect(error.reason.startsWith("malformed frame: xxx")).toBe(true);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("ProtocolError");
  });
});
