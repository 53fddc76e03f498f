// Cost model: the Cloudflare bill for 1,000 concurrently connected members for a 30-day month,
// with the stock y-websocket client and with Halo's SDK, from counted WebSocket frames, counted
// upgrades and alarms, workerd CPU seconds, and storage rows written, all measured against Halo
// in workerd (bench/miniflare-host.ts: the deployable bundle, SQLite Durable Objects).
//
//   npx tsx bench/cost-model.ts [--seconds 60] [--rooms 10] [--per-room 10]
//
// What runs. One Halo server (haloBenchConfig: one region "wnam", 4 shards, anonymous auth,
// admin token set for GET /v1/admin/rooms/:room). First a baseline window with no client (the
// fixed cost: the region directory's gossip alarm, workerd's own idle work). Then two
// measurements, one per client kind, each in fresh rooms: `--rooms` rooms of `--per-room`
// members connect (every member its own Y.Doc and its own socket; user id in `?user=`), sync,
// settle 3 s, and run two windows of `--seconds` each:
//   (i)  idle:   everyone connected, nobody does anything;
//   (ii) active: each member sets its awareness field `cursor` once per second and inserts 1-3
//        characters into the Y.Text "t" once every 10 seconds.
// The activity is deterministic: member m of room r draws from splitmix32(0xc057 + 1000 r + m)
// its cursor phase (0-999 ms), its edit phase (0-9999 ms), each cursor position (0-999), each
// edit's position (a fraction of the text length) and characters (a-z). Both kinds run the same
// script; only event-loop jitter differs.
//   stock: `WebsocketProvider` from y-websocket 3 with `{ WebSocketPolyfill, disableBc: true }`;
//          awareness through `provider.awareness.setLocalStateField`.
//   sdk:   `connect({ url, user, WebSocket })` then `client.room(name, { doc, presence })`;
//          cursor through `room.presence.update`.
// The polyfill of both is `ws`'s WebSocket subclassed to count every frame sent (binary frames
// split by y-protocols message type; awareness frames carrying another client's entry are
// "relayed"; text frames split into "ping" and other) and every frame received, with bytes.
//
// What is counted, and how it becomes a bill (prices: Workers Paid plan, Durable Objects
// pricing page, developers.cloudflare.com/durable-objects/platform/pricing, read 2026-11-24):
// - Incoming WebSocket messages = binary frames clients send (the Durable Object receives each
//   one). Billed 20:1 as DO requests. The SDK's text "ping" is answered by the platform
//   (setWebSocketAutoResponse) without waking the object; counted apart, left out of the bill,
//   and its cost if it were billed is printed beside it. Outgoing messages are not billed.
// - Upgrades: one Worker request and one DO request (the shard's fetch) per socket the clients
//   open (connections + reconnects); each may add the Worker's Directory.view() RPC (cached
//   2 s per isolate) and the shard's Directory.reportLoad() RPC (at most one per 5 s per shard),
//   so 3 DO requests per upgrade is the bound used. 1,000 members connect once a month plus the
//   measured reconnect rate. With one region no inter-region RPC happens (no replication, no
//   gossip to peers); the admin and REST calls this benchmark makes are outside the windows
//   and not billed in the model.
// - Alarms: the directory's gossip alarm (measured: the heartbeat of its own entry in
//   GET /v1/regions rises once per round) is a fixed cost per region; the shards' alarms write
//   the presence history (presence.historyFlushMs = 30 s after a member's state changes). They
//   are estimated from the stored history rows: one flush stores each changed member's latest
//   event, so its rows name distinct members and were emitted within the last cursor period
//   (1 s), and the next flush's come at least 1 s later. Rows sorted by emission time are
//   grouped, a new group starting when a member repeats or the gap exceeds 750 ms (this relies
//   on the 1 s cursor period); one alarm per group is an upper bound, as rooms of one shard
//   that are due together share an alarm.
// - Duration, lower bound: workerd's CPU seconds in each window (utime + stime of the workerd
//   processes under the server's pid, ServerHandle.cpuSecondsByName), less the baseline's rate,
//   scaled by members, plus the baseline's rate unscaled; times 128 MB. Handler wall time is at
//   least its CPU time, but workerd's CPU also holds runtime work no handler bills (socket I/O,
//   Miniflare's own services), and a local workerd on a shared 2-core machine is noisy: an
//   approximation, not a bound in the strict sense. Fan-out coalescing timers (<= 20 ms,
//   fanout.maxCoalesceMs) keep a shard from hibernating after a message; their worst case
//   (billed messages x 20 ms) is reported beside it.
// - Duration, upper bound: a shard that receives at least one message or alarm in every 10 s
//   window never hibernates and is billed 100% wall time, 128 MB each. At 1,000 members the 100
//   rooms sit on the 4 shards (25 each); a shard is busy in a window with probability
//   1 - exp(-25 x lambda x 10 s), lambda being a room's measured rate of billed messages plus
//   alarms. The directory counts as one more object busy 100% when it has an alarm every 10 s.
// - Rows written (SQLite): document log appends (Delta logUpdates from the admin endpoint) plus
//   compactions x (500 log rows deleted + 2 snapshot rows), and presence rows: every stored
//   history event, the member row upserted with it, one room row per flush. An approximation:
//   once a room's history is full (10,000 events or 7 days) pruning deletes about one old row
//   per row stored, which is not counted, nor are index writes. Rows read and stored bytes: as published,
//   not measured here.
// - Scaling: counts per member-second, times 1,000 members x 2,592,000 s. Mixes: all idle, all
//   active, and 10% of members active at any time (0.9 idle + 0.1 active, linear in counts).
// Results go to bench/results/cost-model-<date>.json.

import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import * as decoding from "lib0/decoding";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { connect, type WebSocketConstructor } from "../src/client/index";
import { splitmix32, uniform } from "./prng";
import {
  getFreePort,
  haloBenchConfig,
  PROJECT_ROOT,
  type ServerHandle,
  startHaloMiniflare,
} from "./servers";

// ---------------------------------------------------------------------------------------------
// Constants: prices, scale, Halo defaults the model relies on.

const PRICES = {
  baseUsdPerMonth: 5,
  workerRequestsIncluded: 10_000_000,
  doRequestsIncluded: 1_000_000,
  usdPerMillionDoRequests: 0.15,
  wsMessagesPerRequest: 20,
  gbSecondsIncluded: 400_000,
  usdPerMillionGbSeconds: 12.5,
  gbPerObject: 0.125,
  rowsWrittenIncluded: 50_000_000,
  usdPerMillionRowsWritten: 1,
  rowsReadIncluded: 25_000_000_000,
  usdPerMillionRowsRead: 0.001,
  storageGbIncluded: 5,
  usdPerGbMonth: 0.2,
  source:
    "developers.cloudflare.com/durable-objects/platform/pricing (Workers Paid), read 2026-11-24",
} as const;

const MONTH_SECONDS = 30 * 24 * 3600;
const TARGET_MEMBERS = 1000;
const TARGET_ROOM_SIZE = 10;
const SHARDS = 4;
const REGION = "wnam";
/** A shard with a message in every window this long is taken as never hibernating. */
const BUSY_WINDOW_S = 10;
/** DO requests per upgrade: the shard's fetch, plus at most one Directory.view and one reportLoad. */
const DO_REQUESTS_PER_UPGRADE = 3;
/** Halo defaults (src/config/config-schema.ts) the model names. */
const HISTORY_FLUSH_MS = 30_000; // presence.historyFlushMs, the default
const COMPACT_AFTER_UPDATES = 500;
const MAX_COALESCE_MS = 20;
/** Stored history rows further apart than this belong to different flushes (cursor period 1 s). */
const FLUSH_GAP_MS = 750;
const BASELINE_SECONDS = 10;
const SETTLE_MS = 3000;
/** Presence history is written up to historyFlushMs after the last change: wait that out. */
const HISTORY_WAIT_MS = HISTORY_FLUSH_MS + 1000;
const ADMIN_TOKEN = "cost-model-admin-token-0123456789";
const OBSERVER = "cost-model-observer";
const SEED = 0xc057;

// ---------------------------------------------------------------------------------------------
// Frame counting.

type Kind = "stock" | "sdk";
type PhaseName = "connect" | "idle" | "active";

interface FrameCounts {
  /** Sockets constructed (each is one upgrade request). */
  upgrades: number;
  opens: number;
  closes: number;
  /** Binary frames clients sent: WebSocket messages the Durable Object receives (billed). */
  sentBinary: number;
  sentBinaryBytes: number;
  sentSync: number;
  /** Awareness frames with only the sender's own entry. */
  sentAwarenessOwn: number;
  /** Awareness frames carrying another client's entry (a re-broadcast of what it received). */
  sentAwarenessRelayed: number;
  sentQueryAwareness: number;
  /** Halo's extension channel (type 100): presence resync, token refresh. */
  sentControl: number;
  sentOtherBinary: number;
  /** Text "ping": answered by the platform, never delivered to the object. */
  sentPing: number;
  sentOtherText: number;
  sentTextBytes: number;
  receivedBinary: number;
  receivedText: number;
  receivedBytes: number;
}

function emptyCounts(): FrameCounts {
  return {
    upgrades: 0,
    opens: 0,
    closes: 0,
    sentBinary: 0,
    sentBinaryBytes: 0,
    sentSync: 0,
    sentAwarenessOwn: 0,
    sentAwarenessRelayed: 0,
    sentQueryAwareness: 0,
    sentControl: 0,
    sentOtherBinary: 0,
    sentPing: 0,
    sentOtherText: 0,
    sentTextBytes: 0,
    receivedBinary: 0,
    receivedText: 0,
    receivedBytes: 0,
  };
}

/** One window's counts, and its billed frames per room per 10 s window. */
class Tally {
  readonly counts = emptyCounts();
  readonly windows = new Map<string, number[]>();
  readonly startedAt = Date.now();

  sentBinary(room: string, bytes: Uint8Array, ownClientId: number | undefined): void {
    const c = this.counts;
    c.sentBinary++;
    c.sentBinaryBytes += bytes.byteLength;
    const type = classify(bytes, ownClientId);
    c[type]++;
    const index = Math.floor((Date.now() - this.startedAt) / (BUSY_WINDOW_S * 1000));
    let perWindow = this.windows.get(room);
    if (!perWindow) {
      perWindow = [];
      this.windows.set(room, perWindow);
    }
    perWindow[index] = (perWindow[index] ?? 0) + 1;
  }

  sentText(text: string): void {
    if (text === "ping") this.counts.sentPing++;
    else this.counts.sentOtherText++;
    this.counts.sentTextBytes += Buffer.byteLength(text);
  }
}

type SentType =
  | "sentSync"
  | "sentAwarenessOwn"
  | "sentAwarenessRelayed"
  | "sentQueryAwareness"
  | "sentControl"
  | "sentOtherBinary";

/** The y-protocols message type of a frame; awareness split by whose entries it carries. */
function classify(bytes: Uint8Array, ownClientId: number | undefined): SentType {
  try {
    const decoder = decoding.createDecoder(bytes);
    const type = decoding.readVarUint(decoder);
    if (type === 0) return "sentSync";
    if (type === 3) return "sentQueryAwareness";
    if (type === 100) return "sentControl";
    if (type !== 1) return "sentOtherBinary";
    const update = decoding.createDecoder(decoding.readVarUint8Array(decoder));
    const entries = decoding.readVarUint(update);
    for (let i = 0; i < entries; i++) {
      const clientId = decoding.readVarUint(update);
      decoding.readVarUint(update); // clock
      decoding.readVarString(update); // state
      if (clientId !== ownClientId) return "sentAwarenessRelayed";
    }
    return "sentAwarenessOwn";
  } catch {
    return "sentOtherBinary";
  }
}

/** Where frames are counted now; frames outside a measured window go to a throwaway tally. */
const recorder = { current: new Tally() };
/** user id -> the awareness clientID of that member's document (to tell own entries apart). */
const ownClientIds = new Map<string, number>();

type SendData = Parameters<WebSocket["send"]>[0];
type SendCallback = (err?: Error) => void;
interface SendOptions {
  mask?: boolean;
  binary?: boolean;
  compress?: boolean;
  fin?: boolean;
}

function bytesOf(data: SendData): Uint8Array | null {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data))
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return null;
}

function rawLength(data: WebSocket.RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, part) => sum + part.byteLength, 0);
  return data.byteLength;
}

/** `ws`'s WebSocket, counting every frame it sends and receives into `recorder.current`. */
class CountingWebSocket extends WebSocket {
  private readonly roomName: string;
  private readonly ownClientId: number | undefined;

  constructor(address: string | URL, protocols?: string | string[]) {
    super(address, protocols);
    const url = new URL(String(address));
    this.roomName = decodeURIComponent(url.pathname.split("/").pop() ?? "");
    this.ownClientId = ownClientIds.get(url.searchParams.get("user") ?? "");
    recorder.current.counts.upgrades++;
    this.on("open", () => {
      recorder.current.counts.opens++;
    });
    this.on("close", () => {
      recorder.current.counts.closes++;
    });
    this.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
      const counts = recorder.current.counts;
      if (isBinary) counts.receivedBinary++;
      else counts.receivedText++;
      counts.receivedBytes += rawLength(data);
    });
  }

  override send(
    data: SendData,
    optionsOrCallback?: SendOptions | SendCallback,
    callback?: SendCallback,
  ): void {
    if (typeof data === "string") recorder.current.sentText(data);
    else {
      const bytes = bytesOf(data);
      if (bytes) recorder.current.sentBinary(this.roomName, bytes, this.ownClientId);
      else recorder.current.counts.sentOtherBinary++;
    }
    if (typeof optionsOrCallback === "function") super.send(data, optionsOrCallback);
    else if (optionsOrCallback !== undefined) super.send(data, optionsOrCallback, callback);
    else super.send(data, callback);
  }
}

// ---------------------------------------------------------------------------------------------
// Members of both kinds, behind one interface.

interface Member {
  readonly room: string;
  synced(): boolean;
  /** Awareness states this member knows (itself included). */
  statesSeen(): number;
  moveCursor(position: number): void;
  /** Inserts `chars` at `fraction` of the text's length. */
  edit(fraction: number, chars: string): void;
  close(): void;
}

type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

function userState(user: string): { name: string; color: string } {
  return { name: user, color: "#3366ff" };
}

function insertAt(text: Y.Text, fraction: number, chars: string): void {
  text.insert(Math.floor(fraction * (text.length + 1)), chars);
}

function stockMember(port: number, room: string, user: string): Member {
  const doc = new Y.Doc();
  ownClientIds.set(user, doc.clientID);
  const provider = new WebsocketProvider(`ws://127.0.0.1:${port}/v1/rooms`, room, doc, {
    WebSocketPolyfill: CountingWebSocket as unknown as PolyfillOption,
    disableBc: true,
    params: { user },
  });
  provider.awareness.setLocalStateField("user", userState(user));
  const text = doc.getText("t");
  return {
    room,
    synced: () => provider.synced,
    statesSeen: () => provider.awareness.getStates().size,
    moveCursor: (position) =>
      provider.awareness.setLocalStateField("cursor", { anchor: position, head: position }),
    edit: (fraction, chars) => insertAt(text, fraction, chars),
    close: () => {
      provider.destroy();
      doc.destroy(); // destroys the provider's Awareness too (its 3 s interval)
    },
  };
}

function sdkMember(port: number, room: string, user: string): Member {
  const doc = new Y.Doc();
  ownClientIds.set(user, doc.clientID);
  const client = connect({
    url: `http://127.0.0.1:${port}`,
    user,
    WebSocket: CountingWebSocket as unknown as WebSocketConstructor,
  });
  const handle = client.room(room, { doc, presence: { user: userState(user) } });
  const text = doc.getText("t");
  return {
    room,
    synced: () => handle.synced,
    statesSeen: () => handle.awareness.getStates().size,
    moveCursor: (position) =>
      handle.presence.update({ cursor: { anchor: position, head: position } }),
    edit: (fraction, chars) => insertAt(text, fraction, chars),
    close: () => {
      client.close(); // leaves every room, closes every socket
      doc.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The scripted activity.

interface ScriptEvent {
  atMs: number;
  member: number;
  action: { type: "cursor"; position: number } | { type: "edit"; fraction: number; chars: string };
}

/** Every member's cursor moves (1/s) and edits (1/10 s) for `seconds`, sorted by time. */
function activeScript(rooms: number, perRoom: number, seconds: number): ScriptEvent[] {
  const events: ScriptEvent[] = [];
  const endMs = seconds * 1000;
  for (let r = 0; r < rooms; r++) {
    for (let m = 0; m < perRoom; m++) {
      const next = splitmix32(SEED + 1000 * r + m);
      const member = r * perRoom + m;
      const cursorPhase = Math.floor(uniform(next) * 1000);
      const editPhase = Math.floor(uniform(next) * 10_000);
      for (let t = cursorPhase; t < endMs; t += 1000)
        events.push({
          atMs: t,
          member,
          action: { type: "cursor", position: Math.floor(uniform(next) * 1000) },
        });
      for (let t = editPhase; t < endMs; t += 10_000) {
        const length = 1 + Math.floor(uniform(next) * 3);
        let chars = "";
        for (let i = 0; i < length; i++)
          chars += String.fromCharCode(97 + Math.floor(uniform(next) * 26));
        events.push({ atMs: t, member, action: { type: "edit", fraction: uniform(next), chars } });
      }
    }
  }
  return events.sort((a, b) => a.atMs - b.atMs || a.member - b.member);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runScript(
  members: Member[],
  events: ScriptEvent[],
  startedAt: number,
): Promise<void> {
  for (const event of events) {
    const wait = startedAt + event.atMs - Date.now();
    if (wait > 0) await sleep(wait);
    const member = members[event.member];
    if (!member) continue;
    if (event.action.type === "cursor") member.moveCursor(event.action.position);
    else member.edit(event.action.fraction, event.action.chars);
  }
}

async function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Server-side observations: admin storage stats, presence history, directory heartbeat.

async function getJson(url: string, headers: Record<string, string> = {}): Promise<unknown> {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, { headers });
    if (response.status === 429 && attempt < 5) {
      await response.arrayBuffer();
      await sleep(1000);
      continue;
    }
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${await response.text()}`);
    return response.json();
  }
}

function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

function numberField(value: unknown, key: string): number {
  const found = field(value, key);
  if (typeof found !== "number") throw new Error(`expected a number at ${key}`);
  return found;
}

interface RoomStorage {
  shard: string;
  logUpdates: number;
  compactions: number;
  snapshotBytes: number;
  logBytes: number;
}

async function roomStorage(port: number, room: string): Promise<RoomStorage> {
  const body = await getJson(
    `http://127.0.0.1:${port}/v1/admin/rooms/${encodeURIComponent(room)}?region=${REGION}`,
    { authorization: `Bearer ${ADMIN_TOKEN}` },
  );
  const storage = field(body, "storage");
  const shard = field(body, "shard");
  return {
    shard: typeof shard === "string" ? shard : "unknown",
    logUpdates: numberField(storage, "logUpdates"),
    compactions: numberField(storage, "compactions"),
    snapshotBytes: numberField(storage, "snapshotBytes"),
    logBytes: numberField(storage, "logBytes"),
  };
}

interface HistoryRow {
  seq: number;
  at: number;
  type: string;
  /** The member's clientID (member events), else null. */
  clientId: number | null;
}

/** Stored presence history rows of `room` emitted in [from, to]. */
async function historyRows(
  port: number,
  room: string,
  from: number,
  to: number,
): Promise<HistoryRow[]> {
  const rows: HistoryRow[] = [];
  let cursor: string | undefined;
  for (;;) {
    const params = new URLSearchParams({
      user: OBSERVER,
      from: String(from),
      to: String(to + 1),
      limit: "1000",
    });
    if (cursor !== undefined) params.set("since", cursor);
    const body = await getJson(
      `http://127.0.0.1:${port}/v1/rooms/${encodeURIComponent(room)}/presence/history?${params}`,
    );
    const events = field(body, "events");
    if (Array.isArray(events)) {
      for (const event of events) {
        const type = field(event, "type");
        const clientId = field(field(event, "member"), "clientId");
        rows.push({
          seq: numberField(event, "seq"),
          at: numberField(event, "at"),
          type: typeof type === "string" ? type : "unknown",
          clientId: typeof clientId === "number" ? clientId : null,
        });
      }
    }
    const next = field(body, "nextCursor");
    if (typeof next !== "string") return rows;
    cursor = next;
  }
}

/** History flushes: rows grouped by time, a new group when a member repeats or a gap is long. */
function flushGroups(rows: readonly HistoryRow[]): number {
  const sorted = [...rows].sort((a, b) => a.at - b.at || a.seq - b.seq);
  let groups = 0;
  let last = Number.NEGATIVE_INFINITY;
  let seen = new Set<number>();
  for (const row of sorted) {
    const repeats = row.clientId !== null && seen.has(row.clientId);
    if (repeats || row.at - last > FLUSH_GAP_MS) {
      groups++;
      seen = new Set();
    }
    if (row.clientId !== null) seen.add(row.clientId);
    last = row.at;
  }
  return groups;
}

/** The heartbeat of the region's own entry: it rises once per gossip round (directory alarm). */
async function directoryHeartbeat(port: number): Promise<number> {
  const body = await getJson(`http://127.0.0.1:${port}/v1/regions?region=${REGION}`);
  const regions = field(body, "regions");
  if (!Array.isArray(regions)) throw new Error("GET /v1/regions: no regions");
  const own = regions.find((entry) => field(entry, "region") === REGION);
  return numberField(own, "heartbeat");
}

// ---------------------------------------------------------------------------------------------
// Measurement.

interface WindowResult {
  phase: PhaseName;
  seconds: number;
  members: number;
  rooms: number;
  counts: FrameCounts;
  workerdCpuSeconds: number;
  cpuSecondsByProcess: Record<string, number>;
  directoryAlarms: number;
  documentAppends: number;
  compactions: number;
  documentRowsWritten: number;
  presenceHistoryRows: number;
  presenceFlushes: number;
  presenceRowsWritten: number;
  /** Estimated shard alarms: one per presence flush (upper bound). */
  shardAlarms: number;
  /** Complete 10 s windows in the phase, and per shard how many had at least one billed message. */
  busyWindows: { windows: number; byShard: Record<string, number>; roomWindowsBusy: number };
}

interface KindResult {
  kind: Kind;
  rooms: string[];
  shardOf: Record<string, string>;
  windows: WindowResult[];
}

interface Settings {
  seconds: number;
  rooms: number;
  perRoom: number;
}

function busyWindows(
  tally: Tally,
  seconds: number,
  shardOf: Record<string, string>,
): WindowResult["busyWindows"] {
  const windows = Math.floor(seconds / BUSY_WINDOW_S);
  const busyByShard = new Map<string, Set<number>>();
  let roomWindowsBusy = 0;
  for (const [room, perWindow] of tally.windows) {
    const shard = shardOf[room] ?? "unknown";
    let set = busyByShard.get(shard);
    if (!set) {
      set = new Set();
      busyByShard.set(shard, set);
    }
    for (let i = 0; i < windows; i++) {
      if ((perWindow[i] ?? 0) > 0) {
        set.add(i);
        roomWindowsBusy++;
      }
    }
  }
  const byShard: Record<string, number> = {};
  for (const shard of new Set(Object.values(shardOf)))
    byShard[shard] = busyByShard.get(shard)?.size ?? 0;
  return { windows, byShard, roomWindowsBusy };
}

async function measureKind(
  kind: Kind,
  server: ServerHandle,
  port: number,
  settings: Settings,
  runId: string,
): Promise<KindResult> {
  const { rooms: roomCount, perRoom, seconds } = settings;
  const rooms = Array.from({ length: roomCount }, (_, r) => `cost-${kind}-${runId}-${r}`);
  const members: Member[] = [];
  const connectTally = new Tally();
  recorder.current = connectTally;
  try {
    for (const [r, room] of rooms.entries()) {
      for (let m = 0; m < perRoom; m++) {
        const user = `cm-${kind}-${r}-${m}`;
        members.push(
          kind === "stock" ? stockMember(port, room, user) : sdkMember(port, room, user),
        );
      }
      await sleep(50);
    }
    await until(() => members.every((m) => m.synced()), `${kind}: every member synced`);
    await until(
      () => members.every((m) => m.statesSeen() === perRoom),
      `${kind}: every member seeing ${perRoom} awareness states`,
    );
    await sleep(SETTLE_MS);

    const shardOf: Record<string, string> = {};
    const before = new Map<string, RoomStorage>();
    for (const room of rooms) {
      const stats = await roomStorage(port, room);
      shardOf[room] = stats.shard;
      before.set(room, stats);
    }
    recorder.current = new Tally(); // admin calls made no client frames, but keep windows clean

    const windows: WindowResult[] = [];
    const script = activeScript(roomCount, perRoom, seconds);
    for (const phase of ["idle", "active"] as const) {
      const heartbeatBefore = await directoryHeartbeat(port);
      const tally = new Tally();
      recorder.current = tally;
      server.beginWindow();
      const startedAt = tally.startedAt;
      if (phase === "active") await runScript(members, script, startedAt);
      const remaining = startedAt + seconds * 1000 - Date.now();
      if (remaining > 0) await sleep(remaining);
      server.endWindow();
      const endedAt = Date.now();
      recorder.current = new Tally();
      const cpuByName = server.cpuSecondsByName();
      const heartbeatAfter = await directoryHeartbeat(port);
      await sleep(HISTORY_WAIT_MS); // let the last presence updates reach the history

      let documentAppends = 0;
      let compactions = 0;
      let presenceHistoryRows = 0;
      let presenceFlushes = 0;
      for (const room of rooms) {
        const stats = await roomStorage(port, room);
        const prior = before.get(room) ?? stats;
        const compacted = stats.compactions - prior.compactions;
        compactions += compacted;
        documentAppends += stats.logUpdates - prior.logUpdates + compacted * COMPACT_AFTER_UPDATES;
        before.set(room, stats);
        const rows = await historyRows(port, room, startedAt, endedAt);
        presenceHistoryRows += rows.length;
        presenceFlushes += flushGroups(rows);
      }
      const windowSeconds = (endedAt - startedAt) / 1000;
      windows.push({
        phase,
        seconds: windowSeconds,
        members: members.length,
        rooms: roomCount,
        counts: tally.counts,
        workerdCpuSeconds: cpuByName.workerd ?? 0,
        cpuSecondsByProcess: cpuByName,
        directoryAlarms: heartbeatAfter - heartbeatBefore,
        documentAppends,
        compactions,
        documentRowsWritten: documentAppends + compactions * (COMPACT_AFTER_UPDATES + 2),
        presenceHistoryRows,
        presenceFlushes,
        presenceRowsWritten: 2 * presenceHistoryRows + presenceFlushes,
        shardAlarms: presenceFlushes,
        busyWindows: busyWindows(tally, windowSeconds, shardOf),
      });
    }
    windows.unshift({
      phase: "connect",
      seconds: 0,
      members: members.length,
      rooms: roomCount,
      counts: connectTally.counts,
      workerdCpuSeconds: 0,
      cpuSecondsByProcess: {},
      directoryAlarms: 0,
      documentAppends: 0,
      compactions: 0,
      documentRowsWritten: 0,
      presenceHistoryRows: 0,
      presenceFlushes: 0,
      presenceRowsWritten: 0,
      shardAlarms: 0,
      busyWindows: { windows: 0, byShard: {}, roomWindowsBusy: 0 },
    });
    return { kind, rooms, shardOf, windows };
  } finally {
    recorder.current = new Tally();
    for (const member of members) member.close();
    await sleep(500);
  }
}

// ---------------------------------------------------------------------------------------------
// The model.

interface Rates {
  /** Per member-second. */
  billedMessages: number;
  pings: number;
  reconnects: number;
  shardAlarms: number;
  rowsWritten: number;
  /** workerd CPU seconds above the baseline rate. */
  cpuExcess: number;
  /** Per room-second: billed messages plus shard alarms (wake-ups of its shard). */
  roomWakeups: number;
}

function ratesOf(w: WindowResult, baselineCpuPerSecond: number): Rates {
  const memberSeconds = w.members * w.seconds;
  return {
    billedMessages: w.counts.sentBinary / memberSeconds,
    pings: w.counts.sentPing / memberSeconds,
    reconnects: Math.max(0, w.counts.upgrades) / memberSeconds,
    shardAlarms: w.shardAlarms / memberSeconds,
    rowsWritten: (w.documentRowsWritten + w.presenceRowsWritten) / memberSeconds,
    cpuExcess: Math.max(0, w.workerdCpuSeconds - baselineCpuPerSecond * w.seconds) / memberSeconds,
    roomWakeups: (w.counts.sentBinary + w.shardAlarms) / (w.rooms * w.seconds),
  };
}

function mixRates(idle: Rates, active: Rates, activeShare: number): Rates {
  const mix = (key: keyof Rates): number =>
    (1 - activeShare) * idle[key] + activeShare * active[key];
  return {
    billedMessages: mix("billedMessages"),
    pings: mix("pings"),
    reconnects: mix("reconnects"),
    shardAlarms: mix("shardAlarms"),
    rowsWritten: mix("rowsWritten"),
    cpuExcess: mix("cpuExcess"),
    roomWakeups: mix("roomWakeups"),
  };
}

interface Bill {
  mix: string;
  wsMessages: number;
  pings: number;
  upgrades: number;
  directoryAlarms: number;
  shardAlarms: number;
  doRequests: number;
  workerRequests: number;
  gbSecondsLower: number;
  gbSecondsUpper: number;
  /** Worst case of the coalescing timers: every billed message holds its shard 20 ms. */
  gbSecondsTimerAllowance: number;
  shardBusyFraction: number;
  rowsWritten: number;
  usdRequests: number;
  usdRequestsIfPingsBilled: number;
  usdDurationLower: number;
  usdDurationUpper: number;
  usdRowsWritten: number;
  usdTotalLower: number;
  usdTotalUpper: number;
}

const overage = (used: number, included: number, usdPerMillion: number): number =>
  (Math.max(0, used - included) / 1e6) * usdPerMillion;

function bill(
  mix: string,
  rates: Rates,
  baselineCpuPerSecond: number,
  directoryAlarmsPerSecond: number,
): Bill {
  const memberSeconds = TARGET_MEMBERS * MONTH_SECONDS;
  const wsMessages = rates.billedMessages * memberSeconds;
  const pings = rates.pings * memberSeconds;
  const upgrades = TARGET_MEMBERS + rates.reconnects * memberSeconds;
  const directoryAlarms = directoryAlarmsPerSecond * MONTH_SECONDS;
  const shardAlarms = rates.shardAlarms * memberSeconds;
  const doRequests =
    wsMessages / PRICES.wsMessagesPerRequest +
    upgrades * DO_REQUESTS_PER_UPGRADE +
    directoryAlarms +
    shardAlarms;
  const cpuSeconds = baselineCpuPerSecond * MONTH_SECONDS + rates.cpuExcess * memberSeconds;
  const gbSecondsLower = cpuSeconds * PRICES.gbPerObject;
  const roomsPerShard = TARGET_MEMBERS / TARGET_ROOM_SIZE / SHARDS;
  const shardBusyFraction = 1 - Math.exp(-roomsPerShard * rates.roomWakeups * BUSY_WINDOW_S);
  const directoryBusy = directoryAlarmsPerSecond * BUSY_WINDOW_S >= 1 ? 1 : 0;
  const gbSecondsUpper = Math.max(
    gbSecondsLower,
    (SHARDS * shardBusyFraction + directoryBusy) * MONTH_SECONDS * PRICES.gbPerObject,
  );
  const gbSecondsTimerAllowance =
    Math.min((wsMessages * MAX_COALESCE_MS) / 1000, SHARDS * MONTH_SECONDS) * PRICES.gbPerObject;
  const rowsWritten = rates.rowsWritten * memberSeconds;
  const usdRequests = overage(
    doRequests,
    PRICES.doRequestsIncluded,
    PRICES.usdPerMillionDoRequests,
  );
  const usdRequestsIfPingsBilled = overage(
    doRequests + pings / PRICES.wsMessagesPerRequest,
    PRICES.doRequestsIncluded,
    PRICES.usdPerMillionDoRequests,
  );
  const usdDurationLower = overage(
    gbSecondsLower,
    PRICES.gbSecondsIncluded,
    PRICES.usdPerMillionGbSeconds,
  );
  const usdDurationUpper = overage(
    gbSecondsUpper,
    PRICES.gbSecondsIncluded,
    PRICES.usdPerMillionGbSeconds,
  );
  const usdRowsWritten = overage(
    rowsWritten,
    PRICES.rowsWrittenIncluded,
    PRICES.usdPerMillionRowsWritten,
  );
  const fixed = PRICES.baseUsdPerMonth + usdRequests + usdRowsWritten;
  return {
    mix,
    wsMessages,
    pings,
    upgrades,
    directoryAlarms,
    shardAlarms,
    doRequests,
    workerRequests: upgrades,
    gbSecondsLower,
    gbSecondsUpper,
    gbSecondsTimerAllowance,
    shardBusyFraction,
    rowsWritten,
    usdRequests,
    usdRequestsIfPingsBilled,
    usdDurationLower,
    usdDurationUpper,
    usdRowsWritten,
    usdTotalLower: fixed + usdDurationLower,
    usdTotalUpper: fixed + usdDurationUpper,
  };
}

const MIXES = [
  { name: "all idle", activeShare: 0 },
  { name: "all active", activeShare: 1 },
  { name: "10% active", activeShare: 0.1 },
] as const;

// ---------------------------------------------------------------------------------------------
// Output.

function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

const usd = (n: number): string => `$${n.toFixed(2)}`;

function countsTable(results: readonly KindResult[]): string {
  const lines = [
    "| client | phase | s | upgrades | sent binary (billed) | sync | awareness own | awareness relayed | control (type 100) | other | ping | sent bytes | received frames | received bytes | workerd CPU s | dir. alarms | doc appends | history rows | flushes (shard alarms est.) | busy 10 s windows per shard |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const result of results) {
    for (const w of result.windows) {
      const c = w.counts;
      const other = c.sentQueryAwareness + c.sentOtherBinary + c.sentOtherText;
      const busy =
        w.busyWindows.windows === 0
          ? "-"
          : Object.entries(w.busyWindows.byShard)
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([shard, n]) => `${shard.split(":").pop()}:${n}/${w.busyWindows.windows}`)
              .join(" ");
      lines.push(
        `| ${result.kind} | ${w.phase} | ${w.seconds.toFixed(1)} | ${c.upgrades} | ${c.sentBinary} | ${c.sentSync} | ${c.sentAwarenessOwn} | ${c.sentAwarenessRelayed} | ${c.sentControl} | ${other} | ${c.sentPing} | ${c.sentBinaryBytes + c.sentTextBytes} | ${c.receivedBinary + c.receivedText} | ${c.receivedBytes} | ${w.workerdCpuSeconds.toFixed(2)} | ${w.directoryAlarms} | ${w.documentAppends} | ${w.presenceHistoryRows} | ${w.presenceFlushes} | ${busy} |`,
      );
    }
  }
  return lines.join("\n");
}

function billTable(kind: Kind, bills: readonly Bill[]): string {
  const lines = [
    `**${kind === "stock" ? "stock y-websocket client" : "Halo SDK"}**, 1,000 members (100 rooms of 10), 30 days`,
    "",
    "| mix | WS messages in | DO requests (msgs/20 + 3×upgrades + alarms) | GB-s lower (CPU) | GB-s upper (wall) | rows written (est.) | $ requests | $ duration (lower–upper) | $ rows written | $ total incl. $5 (lower–upper) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const b of bills) {
    lines.push(
      `| ${b.mix} | ${fmtCount(b.wsMessages)} | ${fmtCount(b.doRequests)} | ${fmtCount(b.gbSecondsLower)} | ${fmtCount(b.gbSecondsUpper)} | ${fmtCount(b.rowsWritten)} | ${usd(b.usdRequests)} | ${usd(b.usdDurationLower)}–${usd(b.usdDurationUpper)} | ${usd(b.usdRowsWritten)} | ${usd(b.usdTotalLower)}–${usd(b.usdTotalUpper)} |`,
    );
  }
  return lines.join("\n");
}

function parseArgs(argv: readonly string[]): Settings {
  const settings: Settings = { seconds: 60, rooms: 10, perRoom: 10 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = Number(argv[i + 1]);
    const set = (key: keyof Settings, min: number): void => {
      if (!Number.isInteger(value) || value < min)
        throw new Error(`${flag} needs an integer >= ${min}`);
      settings[key] = value;
      i++;
    };
    if (flag === "--seconds") set("seconds", BUSY_WINDOW_S);
    else if (flag === "--rooms") set("rooms", 1);
    else if (flag === "--per-room") set("perRoom", 2);
    else
      throw new Error(
        `unknown argument ${flag}; usage: [--seconds 60] [--rooms 10] [--per-room 10]`,
      );
  }
  return settings;
}

async function main(): Promise<void> {
  const settings = parseArgs(process.argv.slice(2));
  // Every stock WebsocketProvider adds a process "exit" listener of its own (y-websocket.js).
  process.setMaxListeners(settings.rooms * settings.perRoom + 10);
  const date = new Date().toISOString();
  const cpu = cpus();
  const machine = {
    cpuModel: cpu[0]?.model ?? "unknown",
    cores: cpu.length,
    node: process.versions.node,
  };
  console.log(`# Cost model, ${date}`);
  console.log(`machine: ${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}`);
  console.log(
    `settings: ${settings.rooms} rooms × ${settings.perRoom} members, idle and active windows of ${settings.seconds} s per client kind`,
  );

  const port = await getFreePort();
  const server = await startHaloMiniflare(port, {
    vars: { HALO_CONFIG: haloBenchConfig(), HALO_ADMIN_TOKEN: ADMIN_TOKEN },
  });
  const runId = Date.now().toString(36);
  try {
    // Baseline: no client; the directory is started by the first routed request.
    const firstHeartbeat = await directoryHeartbeat(port);
    const baselineStart = Date.now();
    await sleep(2000);
    const heartbeatBefore = await directoryHeartbeat(port);
    server.beginWindow();
    const windowStart = Date.now();
    await sleep(BASELINE_SECONDS * 1000);
    server.endWindow();
    const baselineSeconds = (Date.now() - windowStart) / 1000;
    const baselineCpu = server.cpuSecondsByName().workerd ?? 0;
    const heartbeatAfter = await directoryHeartbeat(port);
    const baselineCpuPerSecond = baselineCpu / baselineSeconds;
    console.log(
      `baseline (no clients, ${baselineSeconds.toFixed(1)} s): workerd ${baselineCpu.toFixed(2)} CPU s, directory alarms ${heartbeatAfter - heartbeatBefore}`,
    );

    const results: KindResult[] = [];
    for (const kind of ["stock", "sdk"] as const) {
      console.log(`measuring ${kind} ...`);
      results.push(await measureKind(kind, server, port, settings, runId));
    }
    const lastHeartbeat = await directoryHeartbeat(port);
    const directoryAlarmsPerSecond =
      (lastHeartbeat - firstHeartbeat) / ((Date.now() - baselineStart) / 1000);

    const bills: Record<Kind, Bill[]> = { stock: [], sdk: [] };
    for (const result of results) {
      const idle = result.windows.find((w) => w.phase === "idle");
      const active = result.windows.find((w) => w.phase === "active");
      if (!idle || !active) throw new Error(`${result.kind}: missing a window`);
      const idleRates = ratesOf(idle, baselineCpuPerSecond);
      const activeRates = ratesOf(active, baselineCpuPerSecond);
      for (const mix of MIXES) {
        bills[result.kind].push(
          bill(
            mix.name,
            mixRates(idleRates, activeRates, mix.activeShare),
            baselineCpuPerSecond,
            directoryAlarmsPerSecond,
          ),
        );
      }
    }
    const ratios = MIXES.map((mix, i) => {
      const stock = bills.stock[i];
      const sdk = bills.sdk[i];
      return {
        mix: mix.name,
        billedMessages:
          stock && sdk && sdk.wsMessages > 0
            ? stock.wsMessages / sdk.wsMessages
            : Number.POSITIVE_INFINITY,
        stockMessages: stock?.wsMessages ?? 0,
        sdkMessages: sdk?.wsMessages ?? 0,
      };
    });

    console.log("");
    console.log("## Measured counts (clients' frames; the DO receives the binary ones)");
    console.log("");
    console.log(countsTable(results));
    console.log("");
    console.log(
      `Directory alarms: ${directoryAlarmsPerSecond.toFixed(2)}/s over the run (heartbeat delta; load reports raise it too, so an upper bound). One region: no inter-region RPC. workerd baseline ${baselineCpuPerSecond.toFixed(4)} CPU s/s.`,
    );
    console.log("");
    console.log("## Monthly bill");
    for (const kind of ["stock", "sdk"] as const) {
      console.log("");
      console.log(billTable(kind, bills[kind]));
      console.log("");
      for (const b of bills[kind]) {
        console.log(
          `- ${b.mix}: upgrades ${fmtCount(b.upgrades)} (Worker requests, within the 10 M included), alarms: directory ${fmtCount(b.directoryAlarms)} + shards ${fmtCount(b.shardAlarms)}, shard busy ${(b.shardBusyFraction * 100).toFixed(0)}% of 10 s windows, coalescing-timer worst case +${fmtCount(b.gbSecondsTimerAllowance)} GB-s, pings ${fmtCount(b.pings)} (${usd(b.usdRequestsIfPingsBilled - b.usdRequests)} more if billed)`,
        );
      }
    }
    console.log("");
    console.log("| mix | billed messages stock | billed messages SDK | stock/SDK |");
    console.log("|---|---:|---:|---:|");
    for (const r of ratios) {
      console.log(
        `| ${r.mix} | ${fmtCount(r.stockMessages)} | ${fmtCount(r.sdkMessages)} | ${Number.isFinite(r.billedMessages) ? `${r.billedMessages.toFixed(1)}×` : "∞ (SDK sends none)"} |`,
      );
    }
    console.log("");
    console.log(
      `Storage, as published, not measured here: rows read $${PRICES.usdPerMillionRowsRead}/M beyond ${PRICES.rowsReadIncluded / 1e9} B, stored data $${PRICES.usdPerGbMonth}/GB-month beyond ${PRICES.storageGbIncluded} GB. Rows written above are estimated (document log appends + compactions, presence history + member rows + one room row per flush).`,
    );

    const report = {
      date,
      machine,
      settings,
      prices: PRICES,
      model: {
        monthSeconds: MONTH_SECONDS,
        targetMembers: TARGET_MEMBERS,
        targetRoomSize: TARGET_ROOM_SIZE,
        shards: SHARDS,
        busyWindowSeconds: BUSY_WINDOW_S,
        doRequestsPerUpgrade: DO_REQUESTS_PER_UPGRADE,
        historyFlushMs: HISTORY_FLUSH_MS,
        compactAfterUpdates: COMPACT_AFTER_UPDATES,
        maxCoalesceMs: MAX_COALESCE_MS,
        interRegionRpcs: 0,
      },
      baseline: {
        seconds: baselineSeconds,
        workerdCpuSeconds: baselineCpu,
        workerdCpuPerSecond: baselineCpuPerSecond,
        directoryAlarmsPerSecond,
      },
      measurements: results,
      bills,
      ratios: ratios.map((r) => ({
        ...r,
        billedMessages: Number.isFinite(r.billedMessages) ? r.billedMessages : null,
      })),
    };
    const outDir = join(PROJECT_ROOT, "bench", "results");
    await mkdir(outDir, { recursive: true });
    const jsonPath = join(outDir, `cost-model-${date.replace(/[:.]/g, "-")}.json`);
    await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nJSON: ${jsonPath}`);
  } finally {
    await server.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
