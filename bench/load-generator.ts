// Load generator speaking the y-websocket wire protocol directly over `ws`,
// so one Node process can drive ~1,000 clients. Each client sends timestamped
// awareness states or Yjs text inserts; every client decodes what it receives
// and records fan-out latency for the other clients' messages.

import { performance } from "node:perf_hooks";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import WebSocket from "ws";
import * as Y from "yjs";

export type WorkloadKind = "awareness" | "doc";

/**
 * Wire framing. "y-websocket": each frame is varUint(type) + payload, one
 * document per socket URL. "hocuspocus": the same y-protocols messages, each
 * prefixed with varString(documentName), after an Auth (token) message.
 */
export type Framing = "y-websocket" | "hocuspocus";

export interface LoadOptions {
  url: (room: string) => string;
  rooms: number;
  clientsPerRoom: number;
  /** Per client. */
  updatesPerSecond: number;
  durationSeconds: number;
  warmupSeconds: number;
  kind: WorkloadKind;
  /** Default "y-websocket". */
  framing?: Framing;
  /** Room names are `${roomPrefix}-${i}`; give every run a fresh prefix. */
  roomPrefix?: string;
  connectConcurrency?: number;
  connectTimeoutMs?: number;
  /** Upper bound on waiting for in-flight messages after sending stops. */
  drainTimeoutMs?: number;
  /** The drain also ends after this long without a new delivery (default 3 s). */
  drainStallMs?: number;
  /** Called at the start of the measured window (e.g. to mark server CPU). */
  onMeasureStart?: () => void;
  /** Called when counting stops (after the drain). */
  onMeasureEnd?: () => void;
}

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
  count: number;
}

export interface LoadResult {
  kind: WorkloadKind;
  rooms: number;
  clientsPerRoom: number;
  updatesPerSecond: number;
  durationSeconds: number;
  warmupSeconds: number;
  clients: number;
  connected: number;
  connectFailures: number;
  /** Why connects failed: error message -> count. */
  connectErrors: Record<string, number>;
  /** Sockets that closed after opening, before the run ended. */
  disconnects: number;
  /** Close code and reason of those disconnects -> count. */
  closeCodes: Record<string, number>;
  /** Messages sent with a timestamp inside the measured window. */
  sent: number;
  /** sent * (clientsPerRoom - 1), summed per room. */
  expected: number;
  /** Distinct (message, receiving client) pairs seen, for in-window messages. */
  delivered: number;
  deliveryRatio: number;
  /** delivered / seconds from window start to the last in-window delivery (>= duration). */
  deliveredPerSecond: number;
  /**
   * Distinct (message, receiving client) pairs, of any send time, that arrived
   * while the window was open, per second: the sustained fan-out rate, which
   * stays meaningful when a saturated server never drains its backlog.
   */
  arrivalsPerSecond: number;
  /** Same (message, receiver) pair seen again, e.g. a server resending state. */
  duplicates: number;
  /** Entries we could not attribute to one of our clients' messages. */
  foreignEntries: number;
  latencyMs: LatencySummary;
  /**
   * Frames/bytes received between window start and drain end, except frames
   * carrying only pre-window messages (echoes and handshakes included).
   */
  framesReceived: number;
  bytesReceived: number;
  framesPerDelivered: number;
  bytesPerDelivered: number;
  /** How late the scheduler fired sends: a saturated generator shows up here. */
  sendLagMs: { p99: number; max: number };
  /** CPU used by this (generator) process during the measured window + drain. */
  generatorCpuSeconds: number;
  measuredMs: number;
  drainMs: number;
}

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;
const SYNC_UPDATE = 2;
// Hocuspocus-only message types (@hocuspocus/server MessageType); the rest
// (QueryAwareness, Stateless, CLOSE, SyncStatus, Ping, Pong) are ignored.
const MSG_HP_AUTH = 2;
const MSG_HP_SYNC_REPLY = 4;
const HP_AUTH_TOKEN = 0;

/**
 * Log-bucketed latency histogram (1% wide buckets from 1 µs), so 10M samples
 * cost no memory and no sort; reported percentiles are within ~0.5%.
 */
export class LatencyHistogram {
  private static readonly MIN = 0.001;
  private static readonly LOG_STEP = Math.log(1.01);
  private counts = new Float64Array(2048);
  private total = 0;
  private sum = 0;
  private maxValue = 0;

  record(ms: number): void {
    const v = Math.max(ms, 0);
    let idx = 0;
    if (v > LatencyHistogram.MIN) {
      idx = Math.floor(Math.log(v / LatencyHistogram.MIN) / LatencyHistogram.LOG_STEP) + 1;
    }
    if (idx >= this.counts.length) {
      const grown = new Float64Array(Math.max(idx + 1, this.counts.length * 2));
      grown.set(this.counts);
      this.counts = grown;
    }
    this.counts[idx]! += 1;
    this.total += 1;
    this.sum += v;
    if (v > this.maxValue) this.maxValue = v;
  }

  get count(): number {
    return this.total;
  }

  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        if (i === 0) return 0;
        const lo = LatencyHistogram.MIN * Math.exp((i - 1) * LatencyHistogram.LOG_STEP);
        // Geometric bucket midpoint, capped by the exact max.
        return Math.min(lo * Math.sqrt(1.01), this.maxValue);
      }
    }
    return this.maxValue;
  }

  summary(): LatencySummary {
    return {
      p50: this.percentile(50),
      p95: this.percentile(95),
      p99: this.percentile(99),
      max: this.total === 0 ? Number.NaN : this.maxValue,
      mean: this.total === 0 ? Number.NaN : this.sum / this.total,
      count: this.total,
    };
  }
}

interface Room {
  name: string;
  index: number;
  clients: Client[];
  byClientId: Map<number, Client>;
  sentInWindow: number;
  /** Hocuspocus framing: varString(room name), prepended to every frame we send; null for y-websocket. */
  prefix: Uint8Array | null;
}

interface Client {
  room: Room;
  index: number;
  clientId: number;
  ws: WebSocket | null;
  open: boolean;
  /** Awareness clock, or doc insert sequence number; identifies a message. */
  seq: number;
  doc: Y.Doc | null;
  text: Y.Text | null;
  pendingUpdate: Uint8Array | null;
  /** Bit (seq * clientsPerRoom + receiverIndex) set once that receiver saw it. */
  seen: Uint8Array;
  /** Last JSON state parsed for this sender (keyed by the clock it arrived with); every receiver in the room shares it. */
  memoClock: number;
  memoT: number;
  /** The sender's own sequence number from that state: a server may relay its own clocks. */
  memoN: number;
}

/** Mutable counters shared by all clients of one run. */
interface Counters {
  /** True until the drain ends; deliveries are attributed by send time. */
  counting: boolean;
  /** Scratch: the frame being decoded arrived inside [window start, drain end]. */
  measuring: boolean;
  windowStart: number;
  windowEnd: number;
  delivered: number;
  arrivalsInWindow: number;
  duplicates: number;
  foreign: number;
  frames: number;
  bytes: number;
  lastDeliveryAt: number;
  disconnects: number;
  closeCodes: Map<string, number>;
  connectErrors: Map<string, number>;
  running: boolean;
  hist: LatencyHistogram;
  /** Scratch flags for the frame currently being decoded. */
  frameHasInWindow: boolean;
  frameHasOutOfWindow: boolean;
}

// Tokens inserted into the Y.Text: [sender:seq:timestamp]. Delimited so they
// can be found again even if a server merges consecutive inserts into one item.
const TOKEN_RE = /\[(\d+):(\d+):(\d+(?:\.\d+)?)\]/g;

// A Y.Doc-less awareness client answers a server's sync step 1 with this.
const EMPTY_UPDATE = Y.encodeStateAsUpdate(new Y.Doc());

function encodeSync(subType: number, payload: Uint8Array, prefix: Uint8Array | null): Uint8Array {
  const enc = encoding.createEncoder();
  if (prefix !== null) encoding.writeUint8Array(enc, prefix);
  encoding.writeVarUint(enc, MSG_SYNC);
  encoding.writeVarUint(enc, subType);
  encoding.writeVarUint8Array(enc, payload);
  return encoding.toUint8Array(enc);
}

function encodeAwareness(
  clientId: number,
  clock: number,
  stateJson: string,
  prefix: Uint8Array | null,
): Uint8Array {
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, 1);
  encoding.writeVarUint(inner, clientId);
  encoding.writeVarUint(inner, clock);
  encoding.writeVarString(inner, stateJson);
  const enc = encoding.createEncoder();
  if (prefix !== null) encoding.writeUint8Array(enc, prefix);
  encoding.writeVarUint(enc, MSG_AWARENESS);
  encoding.writeVarUint8Array(enc, encoding.toUint8Array(inner));
  return encoding.toUint8Array(enc);
}

/** Hocuspocus Auth message: the token, for the document named in the prefix. */
function encodeHocuspocusAuth(prefix: Uint8Array): Uint8Array {
  const enc = encoding.createEncoder();
  encoding.writeUint8Array(enc, prefix);
  encoding.writeVarUint(enc, MSG_HP_AUTH);
  encoding.writeVarUint(enc, HP_AUTH_TOKEN);
  encoding.writeVarString(enc, "bench"); // any token: the server has no onAuthenticate hook
  return encoding.toUint8Array(enc);
}

function encodeVarString(s: string): Uint8Array {
  const enc = encoding.createEncoder();
  encoding.writeVarString(enc, s);
  return encoding.toUint8Array(enc);
}

function awarenessState(client: Client, t: number): string {
  // Roughly the size of a real cursor-presence state (~120 bytes).
  return JSON.stringify({
    t,
    c: client.index,
    n: client.seq,
    user: { name: `bench-user-${client.index}`, color: "#30bced" },
    cursor: { anchor: client.seq, head: client.seq + 1 },
  });
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function markSeen(sender: Client, seq: number, receiver: Client, c: number): boolean {
  const bit = seq * c + receiver.index;
  const byte = bit >>> 3;
  if (byte >= sender.seen.length) {
    const grown = new Uint8Array(Math.max(byte + 1, sender.seen.length * 2));
    grown.set(sender.seen);
    sender.seen = grown;
  }
  const mask = 1 << (bit & 7);
  if ((sender.seen[byte]! & mask) !== 0) return false;
  sender.seen[byte]! |= mask;
  return true;
}

function recordDelivery(
  counters: Counters,
  sender: Client,
  seq: number,
  t: number,
  receiver: Client,
  now: number,
): void {
  if (!counters.counting) return;
  // Gate on the message's send time, not on when the scheduler noticed the
  // window opened: a send late in a burst can beat that flag.
  const sentInWindow = t >= counters.windowStart && t < counters.windowEnd;
  if (!markSeen(sender, seq, receiver, receiver.room.clients.length)) {
    if (sentInWindow) counters.duplicates++;
    return;
  }
  // Raw fan-out rate while the window is open, whatever the send time: under
  // saturation the window is spent delivering the warmup backlog.
  if (now >= counters.windowStart && now < counters.windowEnd) counters.arrivalsInWindow++;
  if (!sentInWindow) return;
  counters.delivered++;
  counters.lastDeliveryAt = now;
  counters.hist.record(now - t);
}

/** Marks whether the frame being decoded carries in-window or older messages. */
function noteFrameContent(counters: Counters, t: number): void {
  if (t >= counters.windowStart && t < counters.windowEnd) counters.frameHasInWindow = true;
  else counters.frameHasOutOfWindow = true;
}

/** Awareness payload: count, then (clientID, clock, JSON state) per entry. */
function handleAwareness(
  payload: Uint8Array,
  frame: Buffer,
  receiver: Client,
  counters: Counters,
  now: number,
): void {
  const dec = decoding.createDecoder(payload);
  const count = decoding.readVarUint(dec);
  for (let i = 0; i < count; i++) {
    const clientId = decoding.readVarUint(dec);
    const clock = decoding.readVarUint(dec);
    const len = decoding.readVarUint(dec);
    const start = dec.pos;
    dec.pos += len;
    const sender = receiver.room.byClientId.get(clientId);
    if (sender === undefined) {
      if (counters.measuring) counters.foreign++;
      continue;
    }
    // Every receiver decodes the same state; parse the JSON once per message.
    if (sender.memoClock !== clock) {
      sender.memoClock = clock;
      sender.memoT = Number.NaN;
      sender.memoN = Number.NaN;
      const offset = payload.byteOffset - frame.byteOffset + start;
      try {
        const state: unknown = JSON.parse(frame.toString("utf8", offset, offset + len));
        if (
          typeof state === "object" &&
          state !== null &&
          "t" in state &&
          "c" in state &&
          "n" in state
        ) {
          const { t, c, n } = state;
          if (typeof t === "number" && typeof n === "number" && c === sender.index) {
            sender.memoT = t;
            sender.memoN = n;
          }
        }
      } catch {
        // not one of our states
      }
    }
    if (Number.isNaN(sender.memoT)) {
      // e.g. the null state a server broadcasts when a client leaves
      if (counters.measuring) counters.foreign++;
      continue;
    }
    noteFrameContent(counters, sender.memoT);
    if (sender === receiver) continue; // own echo
    recordDelivery(counters, sender, sender.memoN, sender.memoT, receiver, now);
  }
}

/** Doc update: read the inserted strings straight from the encoded structs. */
function handleDocUpdate(
  update: Uint8Array,
  receiver: Client,
  counters: Counters,
  now: number,
): void {
  const { structs } = Y.decodeUpdate(update);
  let text = "";
  for (const struct of structs) {
    if (struct instanceof Y.Item && struct.content instanceof Y.ContentString) {
      text += struct.content.str;
    }
  }
  if (text === "") return;
  const clients = receiver.room.clients;
  for (const m of text.matchAll(TOKEN_RE)) {
    const sender = clients[Number(m[1])];
    if (sender === undefined) {
      if (counters.measuring) counters.foreign++;
      continue;
    }
    const t = Number(m[3]);
    noteFrameContent(counters, t);
    if (sender === receiver) continue; // own echo
    recordDelivery(counters, sender, Number(m[2]), t, receiver, now);
  }
}

function handleFrame(receiver: Client, data: WebSocket.RawData, counters: Counters): void {
  const frame = toBuffer(data);
  const now = performance.now();
  counters.measuring = counters.counting && now >= counters.windowStart;
  counters.frameHasInWindow = false;
  counters.frameHasOutOfWindow = false;
  const dec = decoding.createDecoder(frame);
  const prefix = receiver.room.prefix;
  try {
    // One y-websocket message per frame is the norm; loop in case a server packs more.
    while (dec.pos < frame.length) {
      if (prefix !== null) {
        // Hocuspocus: skip the varString(documentName) address (one doc per socket here).
        const len = decoding.readVarUint(dec);
        dec.pos += len;
      }
      let type = decoding.readVarUint(dec);
      // Hocuspocus's SyncReply carries ordinary sync messages.
      if (type === MSG_HP_SYNC_REPLY && prefix !== null) type = MSG_SYNC;
      if (type === MSG_AWARENESS) {
        handleAwareness(decoding.readVarUint8Array(dec), frame, receiver, counters, now);
      } else if (type === MSG_SYNC) {
        const sub = decoding.readVarUint(dec);
        const payload = decoding.readVarUint8Array(dec);
        if (sub === SYNC_STEP1) {
          // Answer like a provider would, without ever waiting for this.
          const diff =
            receiver.doc === null ? EMPTY_UPDATE : Y.encodeStateAsUpdate(receiver.doc, payload);
          receiver.ws?.send(encodeSync(SYNC_STEP2, diff, prefix));
        } else if ((sub === SYNC_STEP2 || sub === SYNC_UPDATE) && receiver.doc !== null) {
          handleDocUpdate(payload, receiver, counters, now);
        }
      } else {
        // auth, Hocuspocus-only (SyncStatus, Stateless, CLOSE...) or unknown
        // message types: nothing to measure
        break;
      }
    }
  } catch {
    if (counters.measuring) counters.foreign++; // undecodable frame
  }
  // Frames whose messages were all sent before the window (a saturated
  // server's backlog) are not overhead of in-window deliveries; frames with
  // nothing attributable (handshakes, foreign entries) still count.
  if (counters.measuring && (counters.frameHasInWindow || !counters.frameHasOutOfWindow)) {
    counters.frames++;
    counters.bytes += frame.length;
  }
}

function connectClient(
  client: Client,
  url: string,
  timeoutMs: number,
  counters: Counters,
): Promise<boolean> {
  return new Promise((resolveOpen) => {
    let settled = false;
    const settle = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      resolveOpen(ok);
    };
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    client.ws = ws;
    ws.on("message", (data) => handleFrame(client, data, counters));
    ws.on("open", () => {
      client.open = true;
      const prefix = client.room.prefix;
      // Hocuspocus queues what follows until this is accepted.
      if (prefix !== null) ws.send(encodeHocuspocusAuth(prefix));
      // Like a provider: announce ourselves, but never block on a reply (the
      // relay baseline sends nothing back on connect).
      if (client.doc !== null) {
        ws.send(encodeSync(SYNC_STEP1, Y.encodeStateVector(client.doc), prefix));
      } else {
        client.seq = 1; // a new awareness client must start above clock 0
        ws.send(
          encodeAwareness(
            client.clientId,
            client.seq,
            awarenessState(client, performance.now()),
            prefix,
          ),
        );
      }
      settle(true);
    });
    ws.on("error", (err) => {
      if (!client.open) bump(counters.connectErrors, err.message);
      settle(false);
    });
    ws.on("close", (code, reason) => {
      if (client.open && counters.running) {
        counters.disconnects++;
        bump(counters.closeCodes, `${code} ${reason.toString("utf8")}`.trim());
      }
      client.open = false;
      settle(false);
    });
  });
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function sendOne(client: Client, counters: Counters): void {
  const ws = client.ws;
  if (ws === null || !client.open) return;
  client.seq++;
  const t = performance.now();
  let frame: Uint8Array;
  if (client.doc !== null && client.text !== null) {
    client.text.insert(client.text.length, `[${client.index}:${client.seq}:${t.toFixed(3)}]`);
    const update = client.pendingUpdate;
    client.pendingUpdate = null;
    if (update === null) return;
    frame = encodeSync(SYNC_UPDATE, update, client.room.prefix);
  } else {
    frame = encodeAwareness(
      client.clientId,
      client.seq,
      awarenessState(client, t),
      client.room.prefix,
    );
  }
  ws.send(frame);
  if (t >= counters.windowStart && t < counters.windowEnd) client.room.sentInWindow++;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runPool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const R = opts.rooms;
  const C = opts.clientsPerRoom;
  const U = opts.updatesPerSecond;
  const prefix = opts.roomPrefix ?? `bench-${Date.now().toString(36)}`;
  const connectConcurrency = opts.connectConcurrency ?? 64;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 15_000;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 10_000;
  // Generous, so a server that pauses (GC, storage flush) is not cut off early.
  const drainStallMs = opts.drainStallMs ?? 3000;
  const maxSeq = Math.ceil(U * (opts.warmupSeconds + opts.durationSeconds + 1)) + 4;
  // Random base so client IDs never collide with another run's leftovers.
  const idBase = 1 + Math.floor(Math.random() * 2 ** 30);

  const counters: Counters = {
    counting: true,
    measuring: false,
    windowStart: Number.POSITIVE_INFINITY,
    windowEnd: Number.POSITIVE_INFINITY,
    delivered: 0,
    arrivalsInWindow: 0,
    duplicates: 0,
    foreign: 0,
    frames: 0,
    bytes: 0,
    lastDeliveryAt: 0,
    disconnects: 0,
    closeCodes: new Map(),
    connectErrors: new Map(),
    running: true,
    hist: new LatencyHistogram(),
    frameHasInWindow: false,
    frameHasOutOfWindow: false,
  };

  const rooms: Room[] = [];
  const hocuspocus = opts.framing === "hocuspocus";
  for (let r = 0; r < R; r++) {
    const name = `${prefix}-${r}`;
    const room: Room = {
      name,
      index: r,
      clients: [],
      byClientId: new Map(),
      sentInWindow: 0,
      prefix: hocuspocus ? encodeVarString(name) : null,
    };
    for (let i = 0; i < C; i++) {
      const clientId = idBase + r * C + i;
      const client: Client = {
        room,
        index: i,
        clientId,
        ws: null,
        open: false,
        seq: 0,
        doc: null,
        text: null,
        pendingUpdate: null,
        seen: new Uint8Array(Math.ceil(((maxSeq + 1) * C) / 8)),
        memoClock: -1,
        memoN: Number.NaN,
        memoT: Number.NaN,
      };
      if (opts.kind === "doc") {
        // Each client only holds its own inserts: the server must integrate
        // everyone's real Yjs updates, the generator stays cheap.
        const doc = new Y.Doc({ gc: true });
        doc.clientID = clientId;
        doc.on("update", (update: Uint8Array) => {
          client.pendingUpdate = update;
        });
        client.doc = doc;
        client.text = doc.getText("t");
      }
      room.clients.push(client);
      room.byClientId.set(clientId, client);
    }
    rooms.push(room);
  }

  // Connect (bounded concurrency so the server's accept backlog is not flooded).
  const all = rooms.flatMap((room) => room.clients);
  let connectFailures = 0;
  await runPool(all, connectConcurrency, async (client) => {
    const ok = await connectClient(client, opts.url(client.room.name), connectTimeoutMs, counters);
    if (!ok) connectFailures++;
  });
  const connected = all.length - connectFailures;
  // Let handshake traffic (sync step 1/2, initial awareness) settle first.
  await sleep(500);

  // Single scheduler: send slot k fires at t0 + k * period / N, rooms
  // interleaved, so sends are evenly staggered across clients and rooms.
  const order: Client[] = [];
  for (let i = 0; i < C; i++) for (const room of rooms) order.push(room.clients[i]!);
  const N = order.length;
  const periodMs = 1000 / U;
  const stepMs = periodMs / N;
  const t0 = performance.now() + 10;
  counters.windowStart = t0 + opts.warmupSeconds * 1000;
  counters.windowEnd = counters.windowStart + opts.durationSeconds * 1000;
  const lagHist = new LatencyHistogram();
  // Held in an object: assigned inside the scheduler callback.
  const cpuMark: { start: NodeJS.CpuUsage | null } = { start: null };

  await new Promise<void>((done) => {
    let k = 0;
    const tick = (): void => {
      const now = performance.now();
      if (cpuMark.start === null && now >= counters.windowStart) {
        cpuMark.start = process.cpuUsage();
        opts.onMeasureStart?.();
      }
      for (;;) {
        const due = t0 + k * stepMs;
        if (due >= counters.windowEnd) {
          done();
          return;
        }
        if (due > now) break;
        lagHist.record(performance.now() - due);
        sendOne(order[k % N]!, counters);
        k++;
      }
      setTimeout(tick, Math.max(0, t0 + k * stepMs - performance.now()));
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });

  // Drain: stop once everything expected arrived, deliveries stall,
  // or the cap is hit (a saturated server may never catch up).
  const sent = rooms.reduce((acc, room) => acc + room.sentInWindow, 0);
  const expected = rooms.reduce((acc, room) => acc + room.sentInWindow * (C - 1), 0);
  const drainStart = performance.now();
  for (;;) {
    const now = performance.now();
    if (counters.delivered >= expected) break;
    if (now - Math.max(counters.lastDeliveryAt, drainStart) > drainStallMs) break;
    if (now - drainStart > drainTimeoutMs) break;
    await sleep(50);
  }
  const drainEnd = performance.now();
  counters.counting = false;
  opts.onMeasureEnd?.();
  const cpu = process.cpuUsage(cpuMark.start ?? undefined);
  counters.running = false;

  await closeAll(all);
  for (const client of all) client.doc?.destroy();

  const activeMs = Math.max(
    opts.durationSeconds * 1000,
    counters.lastDeliveryAt - counters.windowStart,
  );
  const lag = lagHist.summary();
  return {
    kind: opts.kind,
    rooms: R,
    clientsPerRoom: C,
    updatesPerSecond: U,
    durationSeconds: opts.durationSeconds,
    warmupSeconds: opts.warmupSeconds,
    clients: all.length,
    connected,
    connectFailures,
    connectErrors: Object.fromEntries(counters.connectErrors),
    disconnects: counters.disconnects,
    closeCodes: Object.fromEntries(counters.closeCodes),
    sent,
    expected,
    delivered: counters.delivered,
    deliveryRatio: expected > 0 ? counters.delivered / expected : Number.NaN,
    deliveredPerSecond: counters.delivered / (activeMs / 1000),
    arrivalsPerSecond: counters.arrivalsInWindow / opts.durationSeconds,
    duplicates: counters.duplicates,
    foreignEntries: counters.foreign,
    latencyMs: counters.hist.summary(),
    framesReceived: counters.frames,
    bytesReceived: counters.bytes,
    framesPerDelivered: counters.delivered > 0 ? counters.frames / counters.delivered : Number.NaN,
    bytesPerDelivered: counters.delivered > 0 ? counters.bytes / counters.delivered : Number.NaN,
    sendLagMs: { p99: lag.p99, max: lag.max },
    generatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
    measuredMs: drainEnd - counters.windowStart,
    drainMs: drainEnd - drainStart,
  };
}

async function closeAll(clients: Client[]): Promise<void> {
  const pending: Promise<void>[] = [];
  for (const client of clients) {
    const ws = client.ws;
    if (ws === null || ws.readyState === WebSocket.CLOSED) continue;
    pending.push(
      new Promise<void>((r) => {
        ws.once("close", () => r());
      }),
    );
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close();
  }
  await Promise.race([Promise.all(pending), sleep(2000)]);
  for (const client of clients) {
    if (client.ws !== null && client.ws.readyState !== WebSocket.CLOSED) client.ws.terminate();
  }
}
