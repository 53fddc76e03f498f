import fc from "fast-check";
import * as encoding from "lib0/encoding";
import * as Y from "yjs";

/**
 * Generators for the fuzz test (fuzz.test.ts): y-websocket frames (random, valid, mutated),
 * well-behaved clients' actions, and REST requests. Everything a generator returns is built
 * from its drawn values alone (fixed Yjs clientIDs, no clock or live state), so a seed
 * replays the same frames.
 */

/** The well-behaved clients' Yjs clientIDs: fixed, so frames can target them and a seed replays. */
export const GOOD_IDS = [1_000_001, 1_000_002, 1_000_003] as const;
/** The awareness clientID every attacker connection claims first (its barrier entry). */
export const ATTACKER_ID = 2_000_000;
/** Yjs clientIDs the attacker's scratch documents write as: a small pool, so updates collide and depend on one another. */
const AUTHOR_IDS = [3_000_001, 3_000_002, 3_000_003] as const;

/** Matches `limits.maxFrameBytes` and the default `maxAwarenessStateBytes` in vitest.workers.config.ts. */
const MAX_FRAME_BYTES = 262_144;
const MAX_AWARENESS_STATE_BYTES = 8192;

export type FuzzFrame =
  | { kind: "binary"; label: string; bytes: Uint8Array }
  | { kind: "text"; label: string; text: string };

const utf8 = new TextEncoder();

export function hex(bytes: Uint8Array, max = 256): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, "0")).join("");
  return bytes.byteLength > max ? `${shown}… (${bytes.byteLength} bytes)` : shown;
}

export function fromHex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g) ?? [], (byte) => Number.parseInt(byte, 16));
}

export function describeFrame(frame: FuzzFrame): string {
  return frame.kind === "text"
    ? `text ${JSON.stringify(frame.text.slice(0, 200))} [${frame.label}]`
    : `binary ${hex(frame.bytes)} [${frame.label}]`;
}

/** Counterexamples print as hex rather than as long `Uint8Array.from([...])` lists. */
export function frameOf(frame: FuzzFrame): FuzzFrame {
  return Object.assign(frame, { [fc.toStringMethod]: () => describeFrame(frame) });
}

// Building blocks of the y-websocket encoding (lib0 varints).

function message(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  write(encoder);
  return encoding.toUint8Array(encoder);
}

function syncMessage(step: number, payload: Uint8Array): Uint8Array {
  return message((e) => {
    encoding.writeVarUint(e, 0);
    encoding.writeVarUint(e, step);
    encoding.writeVarUint8Array(e, payload);
  });
}

interface RawAwarenessEntry {
  clientId: number;
  clock: number;
  state: Uint8Array;
}

export function awarenessMessage(entries: readonly RawAwarenessEntry[]): Uint8Array {
  const inner = message((e) => {
    encoding.writeVarUint(e, entries.length);
    for (const entry of entries) {
      encoding.writeVarUint(e, entry.clientId);
      encoding.writeVarUint(e, entry.clock);
      encoding.writeVarUint8Array(e, entry.state);
    }
  });
  return message((e) => {
    encoding.writeVarUint(e, 1);
    encoding.writeVarUint8Array(e, inner);
  });
}

// Values.

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const edgeUint = fc.constantFrom(
  0,
  1,
  127,
  128,
  16_383,
  16_384,
  0x7fff_ffff,
  0xffff_ffff,
  2 ** 32,
  2 ** 53 - 1,
);
const anyUint = fc.oneof(fc.nat({ max: 1000 }), u32, edgeUint, fc.maxSafeNat());

const awarenessClientId = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(ATTACKER_ID, ...GOOD_IDS) },
  { weight: 1, arbitrary: fc.constantFrom(0, 0xffff_ffff, 2 ** 32, 2 ** 53 - 1) },
  { weight: 1, arbitrary: u32 },
);

/** A big state near `maxAwarenessStateBytes`, sometimes with a character outside Latin-1 (two bytes a character once stored). */
const bigState = fc
  .record({
    bytes: fc.integer({ min: MAX_AWARENESS_STATE_BYTES - 64, max: MAX_AWARENESS_STATE_BYTES + 64 }),
    wide: fc.constantFrom("", "é", "€", "ā", "😀", "中"),
  })
  .map(({ bytes, wide }) => {
    const overhead = utf8.encode(`{"p":"${wide}"}`).byteLength;
    return utf8.encode(`{"p":"${"a".repeat(Math.max(0, bytes - overhead))}${wide}"}`);
  });

const awarenessState: fc.Arbitrary<Uint8Array> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
      .map((state) => utf8.encode(JSON.stringify(state))),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        "null",
        " null ",
        "{}",
        "42",
        '"x"',
        "[1,2]",
        "true",
        "{nope",
        "",
        '{"a":}',
        '{"s":"\\ud800"}',
        '{"__proto__":{"polluted":1}}',
        `{"deep":${"[".repeat(2000)}${"]".repeat(2000)}}`,
      )
      .map((text) => utf8.encode(text)),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40, unit: "binary" }).map((s) => utf8.encode(s)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 1, arbitrary: bigState },
);

const awarenessEntries = fc.array(
  fc.record({ clientId: awarenessClientId, clock: anyUint, state: awarenessState }),
  { minLength: 0, maxLength: 4 },
);

// Real Yjs updates, from a scratch document with a pooled author.

type DocOp =
  | { kind: "insert"; root: string; index: number; text: string; bold: boolean }
  | { kind: "delete"; root: string; index: number; length: number }
  | { kind: "embed"; index: number; value: { [key: string]: fc.JsonValue } }
  | { kind: "map"; root: string; key: string; value: fc.JsonValue }
  | { kind: "array"; index: number; values: fc.JsonValue[] }
  | { kind: "xml"; name: string; text: string }
  | { kind: "subdoc"; key: string };

const textRoot = fc.constantFrom("t", "t", "t", "notes");
const docOp: fc.Arbitrary<DocOp> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("insert"),
      root: textRoot,
      index: fc.nat({ max: 64 }),
      // Any code point, astral ones (surrogate pairs) included: splitting one is a classic
      // way to make two replicas disagree (update-integrity.ts refuses it).
      text: fc.string({ minLength: 1, maxLength: 12, unit: "binary" }),
      bold: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("delete"),
      root: textRoot,
      index: fc.nat({ max: 64 }),
      length: fc.integer({ min: 1, max: 6 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("embed"),
      index: fc.nat({ max: 64 }),
      value: fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 1 }), {
        maxKeys: 2,
      }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("map"),
      root: fc.constantFrom("m", "meta"),
      key: fc.string({ maxLength: 6 }),
      value: fc.jsonValue({ maxDepth: 2 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("array"),
      index: fc.nat({ max: 16 }),
      values: fc.array(fc.jsonValue({ maxDepth: 1 }), { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("xml"),
      name: fc.constantFrom("p", "h1", "div", "x-y"),
      text: fc.string({ maxLength: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("subdoc"), key: fc.string({ maxLength: 4 }) }),
  },
);

function applyOp(doc: Y.Doc, op: DocOp): void {
  switch (op.kind) {
    case "insert": {
      const text = doc.getText(op.root);
      text.insert(op.index % (text.length + 1), op.text, op.bold ? { bold: true } : undefined);
      return;
    }
    case "delete": {
      const text = doc.getText(op.root);
      if (text.length === 0) return;
      const index = op.index % text.length;
      text.delete(index, Math.min(op.length, text.length - index));
      return;
    }
    case "embed": {
      const text = doc.getText("t");
      text.insertEmbed(op.index % (text.length + 1), op.value);
      return;
    }
    case "map":
      doc.getMap(op.root).set(op.key, op.value);
      return;
    case "array": {
      const array = doc.getArray<fc.JsonValue>("a");
      array.insert(op.index % (array.length + 1), op.values);
      return;
    }
    case "xml": {
      const element = new Y.XmlElement(op.name);
      element.insert(0, [new Y.XmlText(op.text)]);
      doc.getXmlFragment("x").push([element]);
      return;
    }
    case "subdoc":
      doc.getMap("docs").set(op.key, new Y.Doc());
      return;
  }
}

type UpdateVariant = "whole" | "last" | "pick" | "merged-tail" | "v2" | "diff";

interface UpdateSpec {
  author: number;
  ops: DocOp[];
  variant: UpdateVariant;
  /** Index into the document's incremental updates (`pick`, `merged-tail`) or a clock (`diff`). */
  at: number;
}

/** A real update: whole, or one of its incremental parts (which may depend on parts the server never got). */
function buildUpdate(spec: UpdateSpec): Uint8Array {
  const doc = new Y.Doc();
  doc.clientID = spec.author;
  const updates: Uint8Array[] = [];
  doc.on("update", (update: Uint8Array) => updates.push(update));
  for (const op of spec.ops) doc.transact(() => applyOp(doc, op));
  const pick = (i: number) =>
    updates[i % Math.max(1, updates.length)] ?? Y.encodeStateAsUpdate(new Y.Doc());
  let update: Uint8Array;
  switch (spec.variant) {
    case "whole":
      update = Y.encodeStateAsUpdate(doc);
      break;
    case "last":
      update = pick(updates.length - 1);
      break;
    case "pick":
      update = pick(spec.at);
      break;
    case "merged-tail":
      update = Y.mergeUpdates(updates.slice(spec.at % Math.max(1, updates.length)));
      break;
    case "v2": // the other encoding, which the protocol does not use
      update = Y.encodeStateAsUpdateV2(doc);
      break;
    case "diff": {
      const stateVector = message((e) => {
        encoding.writeVarUint(e, 1);
        encoding.writeVarUint(e, spec.author);
        encoding.writeVarUint(e, spec.at);
      });
      update = Y.encodeStateAsUpdate(doc, stateVector);
      break;
    }
  }
  doc.destroy();
  return update;
}

const updateSpec: fc.Arbitrary<UpdateSpec> = fc.record({
  author: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...AUTHOR_IDS) },
    { weight: 1, arbitrary: u32.filter((id) => !(GOOD_IDS as readonly number[]).includes(id)) },
  ),
  ops: fc.array(docOp, { minLength: 0, maxLength: 6 }),
  variant: fc.constantFrom<UpdateVariant>(
    "whole",
    "whole",
    "last",
    "pick",
    "merged-tail",
    "v2",
    "diff",
  ),
  at: fc.nat({ max: 40 }),
});

const realStateVector = updateSpec.map((spec) => {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, buildUpdate({ ...spec, variant: "whole" }));
  const stateVector = Y.encodeStateVector(doc);
  doc.destroy();
  return stateVector;
});

const randomStateVector = fc
  .array(fc.tuple(fc.oneof(u32, edgeUint), anyUint), { maxLength: 6 })
  .map((pairs) =>
    message((e) => {
      encoding.writeVarUint(e, pairs.length);
      for (const [client, clock] of pairs) {
        encoding.writeVarUint(e, client);
        encoding.writeVarUint(e, clock);
      }
    }),
  );

const syncStep1Frame = fc
  .oneof(realStateVector, randomStateVector)
  .map((sv) => ({ label: "sync step 1", bytes: syncMessage(0, sv) }));

const updateFrame = fc.tuple(fc.constantFrom(1, 2), updateSpec).map(([step, spec]) => ({
  label: `sync ${step === 1 ? "step 2" : "update"} (${spec.variant}, ${spec.ops.length} ops by ${spec.author})`,
  bytes: syncMessage(step, buildUpdate(spec)),
}));

const queryAwarenessFrame = fc.constant({ label: "queryAwareness", bytes: new Uint8Array([3]) });

/**
 * What a stock client sends (real updates, state vectors, JSON-object awareness), plus entries
 * for clientIDs the connection does not own: the server keeps the connection open for all of
 * these, so they build up state (pending structs, owned awareness) for the hostile frames.
 */
const benignFrame: fc.Arbitrary<{ label: string; bytes: Uint8Array }> = fc.oneof(
  { weight: 2, arbitrary: syncStep1Frame },
  {
    weight: 5,
    arbitrary: updateFrame.filter((frame) => !frame.label.includes("(v2,")),
  },
  {
    weight: 3,
    arbitrary: fc
      .array(
        fc.record({
          clientId: awarenessClientId,
          clock: anyUint.filter((clock) => clock <= 2 ** 53 - 1),
          state: fc
            .dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
            .map((state) => utf8.encode(JSON.stringify(state))),
        }),
        { maxLength: 3 },
      )
      .map((entries) => ({
        label: `awareness (${entries.length} entries)`,
        bytes: awarenessMessage(entries.filter((entry) => entry.clientId <= 0xffff_ffff)),
      })),
  },
  { weight: 1, arbitrary: queryAwarenessFrame },
);

/** Well-formed frames of every kind, including what a client must not send (auth, unknown types, bad states). */
const validFrame: fc.Arbitrary<{ label: string; bytes: Uint8Array }> = fc.oneof(
  { weight: 2, arbitrary: syncStep1Frame },
  { weight: 5, arbitrary: updateFrame },
  {
    weight: 4,
    arbitrary: awarenessEntries.map((entries) => ({
      label: `awareness (${entries.length} entries)`,
      bytes: awarenessMessage(entries),
    })),
  },
  { weight: 1, arbitrary: queryAwarenessFrame },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.nat({ max: 3 }), fc.string({ maxLength: 20 })).map(([sub, reason]) => ({
      label: "auth",
      bytes: message((e) => {
        encoding.writeVarUint(e, 2);
        encoding.writeVarUint(e, sub);
        encoding.writeVarString(e, reason);
      }),
    })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.oneof(fc.integer({ min: 4, max: 300 }), edgeUint), fc.uint8Array({ maxLength: 8 }))
      .map(([type, rest]) => ({
        label: `unknown type ${type}`,
        bytes: message((e) => {
          encoding.writeVarUint(e, type);
          encoding.writeUint8Array(e, rest);
        }),
      })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.oneof(fc.integer({ min: 3, max: 20 }), edgeUint), fc.uint8Array({ maxLength: 8 }))
      .map(([step, payload]) => ({
        label: `sync step ${step}`,
        bytes: syncMessage(step, payload),
      })),
  },
);

// Mutations.

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; byte: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number }
  | { kind: "truncate"; at: number }
  | { kind: "duplicate-tail"; count: number }
  | { kind: "huge-varint"; at: number; length: number; terminated: boolean }
  | { kind: "overrun"; at: number; length: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip"), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant("set"), at: fc.nat(), byte: fc.constantFrom(0, 0x7f, 0x80, 0xff) }),
  fc.record({
    kind: fc.constant("insert"),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }),
  }),
  fc.record({ kind: fc.constant("delete"), at: fc.nat(), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant("truncate"), at: fc.nat() }),
  fc.record({ kind: fc.constant("duplicate-tail"), count: fc.integer({ min: 1, max: 64 }) }),
  fc.record({
    kind: fc.constant("huge-varint"),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 12 }),
    terminated: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("overrun"),
    at: fc.nat(),
    length: fc.oneof(fc.integer({ min: 1, max: 300 }), edgeUint),
  }),
);

function mutate(bytes: Uint8Array, change: Mutation): Uint8Array {
  const b = Array.from(bytes);
  const at = (i: number, extra = 0) => (b.length + extra === 0 ? 0 : i % (b.length + extra));
  switch (change.kind) {
    case "flip":
      if (b.length > 0) {
        const i = at(change.at);
        b[i] = (b[i] ?? 0) ^ (1 << change.bit);
      }
      break;
    case "set":
      if (b.length > 0) b[at(change.at)] = change.byte;
      break;
    case "insert":
      b.splice(at(change.at, 1), 0, ...change.bytes);
      break;
    case "delete":
      b.splice(at(change.at), change.count);
      break;
    case "truncate":
      b.length = at(change.at);
      break;
    case "duplicate-tail":
      b.push(...b.slice(-change.count));
      break;
    case "huge-varint": {
      const varint = new Array<number>(change.length).fill(0xff);
      if (change.terminated) varint.push(0x01);
      b.splice(at(change.at, 1), 0, ...varint);
      break;
    }
    case "overrun": {
      // A length prefix that claims more than follows: replace one byte with a larger varint.
      const varint = Array.from(message((e) => encoding.writeVarUint(e, change.length)));
      b.splice(at(change.at), 1, ...varint);
      break;
    }
  }
  return Uint8Array.from(b);
}

// Frames.

const randomFrame = fc
  .uint8Array({ minLength: 0, maxLength: 300 })
  .map((bytes) => ({ label: "random bytes", bytes }));

const mutatedFrame = fc
  .tuple(validFrame, fc.array(mutation, { minLength: 1, maxLength: 3 }))
  .map(([frame, changes]) => ({
    label: `${frame.label}, mutated: ${changes.map((c) => c.kind).join(", ")}`,
    bytes: changes.reduce(mutate, frame.bytes),
  }));

/** Frames at and around `maxFrameBytes`: over it must close with 1009. */
const hugeFrame = fc
  .tuple(fc.integer({ min: -2, max: 64 }), fc.constantFrom(0, 1, 2))
  .map(([delta, step]) => {
    const bytes = syncMessage(step, new Uint8Array(MAX_FRAME_BYTES + delta - 5)); // 5 = type, step, 3-byte length
    return { label: `frame of ${bytes.byteLength} bytes`, bytes };
  });

const hostileFrame: fc.Arbitrary<FuzzFrame> = fc.oneof(
  { weight: 4, arbitrary: randomFrame.map((f) => frameOf({ kind: "binary", ...f })) },
  { weight: 10, arbitrary: validFrame.map((f) => frameOf({ kind: "binary", ...f })) },
  { weight: 8, arbitrary: mutatedFrame.map((f) => frameOf({ kind: "binary", ...f })) },
  {
    weight: 1,
    arbitrary: fc
      .string({ maxLength: 40 })
      .map((text) => frameOf({ kind: "text", label: "text frame", text })),
  },
  { weight: 1, arbitrary: hugeFrame.map((f) => frameOf({ kind: "binary", ...f })) },
);

/**
 * One run's frames from the attacker: a few benign frames, then usually one hostile frame
 * (random, valid but unexpected, mutated, text, or oversized).
 */
export const attackerFrames: fc.Arbitrary<FuzzFrame[]> = fc
  .tuple(
    fc.array(
      benignFrame.map((f) => frameOf({ kind: "binary", ...f })),
      { maxLength: 3 },
    ),
    fc.option(hostileFrame, { freq: 5 }),
  )
  .map(([benign, hostile]) => (hostile ? [...benign, hostile] : benign));

/**
 * Padding for the attacker's barrier state (fuzz.test.ts): usually none, sometimes close to
 * `maxAwarenessStateBytes`, with or without a character outside Latin-1, so that the state the
 * shard keeps in the socket attachment is as large as a client can make it.
 */
export const barrierPad: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constant("") },
  {
    weight: 1,
    arbitrary: fc
      .record({
        length: fc.integer({
          min: MAX_AWARENESS_STATE_BYTES - 300,
          max: MAX_AWARENESS_STATE_BYTES,
        }),
        wide: fc.constantFrom("", "é", "€", "ā", "😀"),
      })
      .map(({ length, wide }) => `${"a".repeat(length - 40)}${wide}`),
  },
);

/**
 * One run of the attacker: its frames, its barrier's padding, and whether the shard hibernates
 * after it (always after a padded barrier: the attachment is what hibernation relies on).
 */
export const attackerRun = fc
  .record({
    frames: attackerFrames,
    pad: barrierPad,
    hibernate: fc.oneof(
      { weight: 9, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) },
    ),
  })
  .map((run) => ({ ...run, hibernate: run.hibernate || run.pad !== "" }));

// Well-behaved clients' actions, interleaved with the fuzz input.

export type GoodAction =
  | { kind: "none" }
  | { kind: "edit"; peer: number; atStart: boolean }
  | { kind: "presence"; peer: number; name: string };

export const goodAction: fc.Arbitrary<GoodAction> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<GoodAction>({ kind: "none" }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("edit"),
      peer: fc.nat({ max: GOOD_IDS.length - 1 }),
      atStart: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("presence"),
      peer: fc.nat({ max: GOOD_IDS.length - 1 }),
      name: fc.string({ maxLength: 12 }),
    }),
  },
);

// REST requests.

export interface TokenClaims {
  sub: fc.JsonValue;
  /** Seconds from now when `relative`, else the claim's literal value. */
  exp: { relative: boolean; value: fc.JsonValue };
  cap: fc.JsonValue;
  name?: fc.JsonValue;
  user?: fc.JsonValue;
}

export type TokenSpec =
  | { kind: "literal"; token: string }
  /** Signed with the test secret (HALO_TOKEN_SECRET) at run time, so the claims are what gets checked. */
  | { kind: "signed"; claims: TokenClaims };

export interface RestRequestSpec {
  method: string;
  path: string;
  query: Array<[string, string]>;
  encodeQuery: boolean;
  token: TokenSpec | null;
  /** Where the token goes: `?token=` or `Authorization: Bearer`. */
  tokenIn: "query" | "header";
  headers: Array<[string, string]>;
  body: Uint8Array | string | null;
}

const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});
const roomChars = fc.constantFrom(..."ABCXYZabcxyz0189._~:-");
const validRoom = fc.string({ unit: roomChars, minLength: 1, maxLength: 24 });

const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const base64url = (text: string) =>
  base64(utf8.encode(text)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

function roomSegment(goodRoom: string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant(goodRoom) },
    { weight: 4, arbitrary: validRoom },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        "",
        ".",
        "..",
        "%2e%2e",
        "%2E.",
        "%00",
        "a%00b",
        "a%2Fb",
        "a%2fb%2f..",
        "%2F",
        "%5C",
        "%ZZ",
        "%",
        "%E2%82",
        "%C0%AF",
        "caf%C3%A9",
        "café",
        "日本語",
        "🙂",
        "a b",
        "a+b",
        "*",
        "a*b",
        "%252F",
        "a;b=c",
        "..%2F..%2Fhealthz",
        "__proto__",
        "constructor",
        "r".repeat(128),
        `${goodRoom}%00`,
        `${goodRoom}%2F..`,
      ),
    },
    { weight: 1, arbitrary: fc.integer({ min: 129, max: 2000 }).map((n) => "r".repeat(n)) },
    { weight: 2, arbitrary: fc.string({ maxLength: 30, unit: "binary" }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map(encodeURIComponent) },
  );
}

const pathSuffix = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("", "/presence", "/document") },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "/",
      "/document/",
      "/presence/x",
      "/x",
      "//",
      "/../presence",
      "/%2e%2e/presence",
      "/document%00",
      "/DOCUMENT",
    ),
  },
);

const otherPath = fc.oneof(
  fc.constantFrom(
    "/",
    "/healthz",
    "/healthz/",
    "/v1",
    "/v1/",
    "/v1/rooms",
    "/v1/rooms/",
    "/v2/rooms/x",
    "//v1/rooms/x",
    "/v1//rooms/x",
    "/V1/ROOMS/x",
    "/v1/rooms/x/y/z",
    "/v1/admin",
    "/v1/admin/regions/wnam/drain",
    "/v1/admin/faults",
    "/v1/regions",
    "/v1/admin/shards",
    "/v1/admin/rooms/x",
    "/v1/admin/rooms/..",
  ),
  fc.webPath(),
);

const sinceValue = fc.oneof(
  realStateVector.map(base64),
  realStateVector.map((sv) =>
    base64(sv).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
  ),
  randomStateVector.map(base64),
  fc.uint8Array({ maxLength: 40 }).map(base64),
  fc.constantFrom("", "%%%", "====", "AA", "AAAA", "/w==", "_-_-", "AP////8P"),
  printable,
);

const claimsArb: fc.Arbitrary<TokenClaims> = fc.record(
  {
    sub: fc.oneof(
      fc.string({ minLength: 1, maxLength: 20 }),
      fc.constantFrom<fc.JsonValue>("", "x".repeat(257), 42, null, ["a"]),
    ),
    exp: fc.oneof(
      fc.record({ relative: fc.constant(true), value: fc.integer({ min: -3600, max: 3600 }) }),
      fc.record({
        relative: fc.constant(false),
        value: fc.constantFrom<fc.JsonValue>(
          0,
          -1,
          1.5,
          2 ** 31 - 1,
          6e9,
          // The common "never expires" 9999999999 (year 2286), and later.
          9_999_999_999,
          1e13,
          2 ** 53 - 1,
          1e300,
          "soon",
          null,
          true,
        ),
      }),
    ),
    cap: fc.oneof(
      fc
        .dictionary(
          fc.oneof(fc.constantFrom("*", "fuzz-*", "*-*-*", "**", "a*b*c*d*e*f*g*h"), validRoom),
          fc.subarray(["read", "write", "presence"]),
          { maxKeys: 3 },
        )
        .map((cap): fc.JsonValue => cap),
      fc.constantFrom<fc.JsonValue>(
        {},
        "*",
        null,
        { "*": "read" },
        { "*": ["admin"] },
        { "": ["read"] },
        { "*": ["read", "read", "read", "read"] },
        { [`${"*a".repeat(100)}*`]: ["read"] },
      ),
    ),
    name: fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom<fc.JsonValue>("n".repeat(257), 7)),
    user: fc.oneof(
      fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
      fc.constantFrom<fc.JsonValue>(
        "user",
        [1],
        { big: "u".repeat(5000) },
        { wide: "€".repeat(1300) },
      ),
    ),
  },
  { requiredKeys: ["sub", "exp", "cap"] },
);

const jwtHeader = fc.constantFrom(
  '{"alg":"HS256","typ":"JWT"}',
  '{"alg":"none"}',
  '{"alg":"ES256","kid":"nope"}',
  '{"alg":"RS256"}',
  '{"alg":"HS512"}',
  '{"alg":"HS256","crit":["exp"]}',
  "{}",
  "not json",
);

const tokenSpec: fc.Arbitrary<TokenSpec> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc
      .oneof(printable, fc.constantFrom("", ".", "..", "a.b.c", "Bearer", "x".repeat(9000)))
      .map((token): TokenSpec => ({ kind: "literal", token })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(jwtHeader, fc.option(claimsArb, { nil: undefined }), fc.uint8Array({ maxLength: 32 }))
      .map(
        ([header, claims, signature]): TokenSpec => ({
          kind: "literal",
          token: `${base64url(header)}.${base64url(JSON.stringify(claims ?? { sub: "x" }))}.${base64url(String.fromCharCode(...signature))}`,
        }),
      ),
  },
  { weight: 3, arbitrary: claimsArb.map((claims): TokenSpec => ({ kind: "signed", claims })) },
);

const VALID_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** A WebSocket handshake, valid or broken one header at a time. */
const upgradeHeaders: fc.Arbitrary<Array<[string, string]>> = fc
  .record({
    upgrade: fc.constantFrom(
      "websocket",
      "websocket",
      "websocket",
      "WebSocket",
      "websocket, h2c",
      "h2c",
      "websocketx",
    ),
    connection: fc.option(
      fc.constantFrom("Upgrade", "Upgrade", "upgrade", "keep-alive, Upgrade", "close", "Upgradex"),
      {
        nil: undefined,
        freq: 6,
      },
    ),
    key: fc.option(
      fc.oneof(
        fc.constant(VALID_KEY),
        fc.constant(VALID_KEY),
        fc.uint8Array({ minLength: 16, maxLength: 16 }).map(base64),
        fc.uint8Array({ minLength: 0, maxLength: 24 }).map(base64),
        fc.constantFrom(
          "short",
          " ",
          "dGhlIHNhbXBsZSBub25jZQ",
          "dGhlIHNhbXBsZSBub25jZQ===",
          " dGhlIHNhbXBsZSBub25jZQ== ",
        ),
        printable,
      ),
      { nil: undefined, freq: 6 },
    ),
    version: fc.option(fc.constantFrom("13", "13", "13", "8", " 13 ", "13, 8", "abc", "0"), {
      nil: undefined,
      freq: 6,
    }),
  })
  .map(({ upgrade, connection, key, version }) => {
    const headers: Array<[string, string]> = [["upgrade", upgrade]];
    if (connection !== undefined) headers.push(["connection", connection]);
    if (key !== undefined) headers.push(["sec-websocket-key", key]);
    if (version !== undefined) headers.push(["sec-websocket-version", version]);
    return headers;
  });

const otherHeaders: fc.Arbitrary<Array<[string, string]>> = fc.array(
  fc.oneof(
    fc.tuple(
      fc.constantFrom("content-type"),
      fc.constantFrom(
        "application/json",
        "application/octet-stream",
        "text/plain",
        "multipart/form-data; boundary=x",
      ),
    ),
    // Headers the Worker sets for its shard: a client must not be able to supply them.
    fc.tuple(
      fc.constantFrom("x-halo-room", "x-halo-region", "x-halo-identity", "x-halo-admin"),
      fc.oneof(
        printable,
        fc.constant('{"userId":"admin","rights":["read","write","presence"],"expiresAt":null}'),
      ),
    ),
    fc.tuple(
      fc.constantFrom("cf-connecting-ip", "x-forwarded-for"),
      fc.constantFrom("203.0.113.7", "::1", "garbage"),
    ),
    fc.tuple(fc.constantFrom("accept", "origin", "cookie", "x-fuzz"), printable),
  ),
  { maxLength: 3 },
);

const body: fc.Arbitrary<Uint8Array | string | null> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2000 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)) },
);

const queryPair: fc.Arbitrary<[string, string]> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constant("since"), sinceValue) },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.constant("user"),
      fc.oneof(validRoom, printable, fc.constantFrom("", "a@b", "x".repeat(129), "日本")),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.constant("region"),
      fc.oneof(
        fc.constantFrom("wnam", "weur", "apac", "", "WNAM", "sam", "__proto__", "wnam "),
        printable,
      ),
    ),
  },
  { weight: 1, arbitrary: fc.tuple(printable, printable) },
);

/** Tokens an issuer could really sign: a capability over every room, and an expiry soon or far off. */
const plausibleToken: fc.Arbitrary<TokenSpec> = fc
  .record({
    sub: fc.string({ unit: roomChars, minLength: 1, maxLength: 12 }),
    rights: fc.subarray(["read", "write", "presence"], { minLength: 1 }),
    exp: fc.oneof(
      fc.record({ relative: fc.constant(true), value: fc.integer({ min: 60, max: 86_400 }) }),
      fc.record({
        relative: fc.constant(false),
        value: fc.constantFrom<fc.JsonValue>(2 ** 31 - 1, 6e9, 9_999_999_999, 2 ** 53 - 1),
      }),
    ),
  })
  .map(({ sub, rights, exp }) => ({ kind: "signed", claims: { sub, exp, cap: { "*": rights } } }));

const VALID_HANDSHAKE: Array<[string, string]> = [
  ["upgrade", "websocket"],
  ["connection", "Upgrade"],
  ["sec-websocket-key", VALID_KEY],
  ["sec-websocket-version", "13"],
];

/** Random requests to the Worker, a good share aimed at `goodRoom` and at real endpoints. */
export function restRequest(goodRoom: string): fc.Arbitrary<RestRequestSpec> {
  const roomPath = fc
    .tuple(roomSegment(goodRoom), pathSuffix)
    .map(([room, suffix]) => `/v1/rooms/${room}${suffix}`);
  const anything: fc.Arbitrary<RestRequestSpec> = fc.record({
    method: fc.oneof(
      { weight: 3, arbitrary: fc.constant("GET") },
      {
        weight: 1,
        arbitrary: fc.constantFrom("POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"),
      },
    ),
    path: fc.oneof({ weight: 5, arbitrary: roomPath }, { weight: 1, arbitrary: otherPath }),
    query: fc.array(queryPair, { maxLength: 3 }),
    encodeQuery: fc.boolean(),
    token: fc.oneof(
      { weight: 3, arbitrary: fc.constant(null) },
      { weight: 2, arbitrary: tokenSpec },
    ),
    tokenIn: fc.constantFrom("query", "header"),
    headers: fc
      .tuple(fc.option(upgradeHeaders, { freq: 3 }), otherHeaders)
      .map(([upgrade, others]) => [...(upgrade ?? []), ...others]),
    body,
  });
  // What a real client sends, with one thing at a time varied: these reach the shard.
  const room = fc.oneof(fc.constant(goodRoom), validRoom);
  const token = fc.oneof(
    { weight: 2, arbitrary: fc.constant(null) },
    { weight: 2, arbitrary: plausibleToken },
    { weight: 1, arbitrary: tokenSpec },
  );
  const region = fc.option(
    fc.constantFrom("wnam", "weur", "apac").map((r): [string, string] => ["region", r]),
    { freq: 3 },
  );
  const upgrade: fc.Arbitrary<RestRequestSpec> = fc.record({
    method: fc.constant("GET"),
    path: room.map((name) => `/v1/rooms/${name}`),
    query: region.map((pair) => (pair ? [pair] : [])),
    encodeQuery: fc.constant(true),
    token,
    tokenIn: fc.constantFrom("query", "header"),
    headers: fc.constant(VALID_HANDSHAKE),
    body: fc.constant(null),
  });
  const query: fc.Arbitrary<RestRequestSpec> = fc.record({
    method: fc.constantFrom("GET", "GET", "HEAD"),
    path: fc
      .tuple(room, fc.constantFrom("", "/presence", "/document"))
      .map(([name, suffix]) => `/v1/rooms/${name}${suffix}`),
    query: fc
      .tuple(region, fc.option(sinceValue, { freq: 2 }))
      .map(([pair, since]) => [
        ...(pair ? [pair] : []),
        ...(since !== null ? [["since", since] as [string, string]] : []),
      ]),
    encodeQuery: fc.constant(true),
    token,
    tokenIn: fc.constantFrom("query", "header"),
    headers: fc.constant([]),
    body: fc.constant(null),
  });
  return fc.oneof(
    { weight: 4, arbitrary: anything },
    { weight: 1, arbitrary: upgrade },
    { weight: 1, arbitrary: query },
  );
}
