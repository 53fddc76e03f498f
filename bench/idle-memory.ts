// Idle-connection memory: peak and current RSS of Halo, @y/websocket-server and
// @hocuspocus/server holding N connected, silent clients spread over rooms, before and after an
// idle period (during which Halo's shards may hibernate), one fresh server per measurement.
//
//   npx tsx bench/idle-memory.ts [--clients 1000,10000] [--per-room 10] [--idle 30,60]
//       [--servers halo,y-websocket-server,hocuspocus,halo-miniflare] [--doc-bytes 1024]
//       [--concurrency 100] [--keepalive 0] [--settle 2] [--warm-rooms 16] [--heap]
//
// Each client sends what a provider sends on connect (sync step 1 for an empty document, sync
// step 2 with an empty update, one awareness state) and then stays silent; the first client of
// each room also inserts --doc-bytes of text, so every room holds a small document. --keepalive S
// makes clients renew their awareness every S seconds instead (y-protocols renews every 15 s).
// halo-miniflare (opt-in) is Halo without `wrangler dev`'s proxy; --heap adds Halo's JS heap.
// Prints markdown tables and writes bench/results/idle-memory-<date>.json.

import { readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, release, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import WebSocket from "ws";
import * as Y from "yjs";
import { InspectorSession } from "./cpu-profile";
import type { Framing } from "./load-generator";
import {
  getFreePort,
  haloBenchConfig,
  PROJECT_ROOT,
  type ServerHandle,
  startHalo,
  startHaloMiniflare,
  startHocuspocus,
  startYWebsocketServer,
} from "./servers";

type ServerName = "halo" | "halo-miniflare" | "y-websocket-server" | "hocuspocus";
const ALL_SERVERS: readonly ServerName[] = ["halo", "y-websocket-server", "hocuspocus"];
/**
 * Opt-in: Halo's deployable bundle in workerd through Miniflare (bench/miniflare-host.ts), without
 * `wrangler dev`'s proxy workerd, which needs about six file descriptors per open WebSocket and
 * so dies near 3,300 sockets under `ulimit -n` 20000.
 */
const KNOWN_SERVERS: readonly ServerName[] = [...ALL_SERVERS, "halo-miniflare"];

function isHalo(name: ServerName): boolean {
  return name === "halo" || name === "halo-miniflare";
}

interface Options {
  clients: number[];
  perRoom: number;
  /** Idle checkpoints in seconds after the post-connect snapshot; the last one is "after idle". */
  idleSeconds: number[];
  servers: ServerName[];
  docBytes: number;
  concurrency: number;
  /** 0: silent clients. Otherwise each client renews its awareness this often. */
  keepaliveSeconds: number;
  /** Pause before the baseline and after the greetings, so startup and handshake work settle. */
  settleSeconds: number;
  /**
   * Rooms connected first, before the "warm" snapshot: one-off costs (Halo's shard instances and
   * SQLite files, code compiled on first use) land there, so (after − warm) / (N − warm clients)
   * is the marginal cost of one more connection. 0: no warm-up.
   */
  warmRooms: number;
  /**
   * Halo only: also read the isolate's JS heap (V8 inspector, Runtime.getHeapUsage) at each
   * snapshot, to tell JS objects (rooms, Y.Docs) from native memory (sockets, buffers), and
   * force one full GC after the idle figures are taken (an idle isolate collects nothing).
   */
  heap: boolean;
}

const DEFAULTS: Options = {
  clients: [1000, 10_000],
  perRoom: 10,
  idleSeconds: [30, 60],
  servers: [...ALL_SERVERS],
  docBytes: 1024,
  concurrency: 100,
  keepaliveSeconds: 0,
  settleSeconds: 2,
  // 16 random rooms reach all of Halo's 4 shards with ~96% probability; the run reports it.
  warmRooms: 16,
  heap: false,
};

const CONNECT_ATTEMPTS = 3;
const HANDSHAKE_TIMEOUT_MS = 15_000;
const SAMPLE_MS = 250;
/** Long enough to read, a valid admin token (Halo refuses shorter ones). */
const ADMIN_TOKEN = "idle-memory-bench-admin-token";
const MB = 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// /proc readers: current VmRSS of the serving process(es) at chosen moments.

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null; // the process exited
  }
}

function vmRssBytes(pid: number): number {
  const status = readText(`/proc/${pid}/status`);
  const kb = status === null ? undefined : /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

/** Parent links of every process, as servers.ts reads them: the tree changes after spawn. */
function childrenByParent(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readText(`/proc/${pid}/stat`);
    if (stat === null) continue;
    // comm may hold spaces and parentheses; ppid is the second field after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [pid]);
    else list.push(pid);
  }
  return children;
}

function descendants(root: number): number[] {
  const children = childrenByParent();
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    out.push(pid);
    for (const child of children.get(pid) ?? []) queue.push(child);
  }
  return out;
}

type Role = "runtime" | "proxy" | "tooling" | "server";

interface ServedProcess {
  pid: number;
  name: string;
  role: Role;
}

/**
 * The processes whose memory is the server's. Node peers: the handle's own process. Halo under
 * `wrangler dev`: two workerd processes, the one running Halo ("runtime") and wrangler's dev
 * proxy bound to the public port ("proxy", which a deployment would not have; each client
 * socket passes through it too); wrangler's node and esbuild are tooling. Under Miniflare the
 * one workerd is the runtime, and the host's node is tooling.
 */
function servedProcesses(server: ServerName, handle: ServerHandle, port: number): ServedProcess[] {
  if (!isHalo(server)) return [{ pid: handle.pid, name: handle.name, role: "server" }];
  const out: ServedProcess[] = [];
  for (const pid of descendants(handle.pid)) {
    const name = readText(`/proc/${pid}/comm`)?.trim() ?? "?";
    if (name !== "workerd") {
      out.push({ pid, name, role: "tooling" });
      continue;
    }
    const args = (readText(`/proc/${pid}/cmdline`) ?? "").split("\0");
    const proxy = server === "halo" && args.includes(`--socket-addr=entry=127.0.0.1:${port}`);
    out.push({ pid, name, role: proxy ? "proxy" : "runtime" });
  }
  return out;
}

interface Snapshot {
  label: string;
  /** Seconds since the server was ready. */
  atSeconds: number;
  /** workerd processes (runtime + proxy) for Halo, as ServerHandle.peakCoreRssBytes counts. */
  coreBytes: number;
  /** Halo's runtime workerd alone; the process itself for the peers. */
  runtimeBytes: number;
  /** The whole spawned tree, tooling included. */
  treeBytes: number;
  openClients: number;
  /** This (load generator) process. */
  generatorRssBytes: number;
  /** Halo's isolate JS heap with --heap (used / total bytes); null otherwise or if unreadable. */
  jsHeap: { usedBytes: number; totalBytes: number } | null;
  processes: Array<ServedProcess & { rssBytes: number }>;
}

interface RssReading {
  core: number;
  runtime: number;
  tree: number;
  processes: Array<ServedProcess & { rssBytes: number }>;
}

function readRss(procs: ServedProcess[]): RssReading {
  let core = 0;
  let runtime = 0;
  let tree = 0;
  const processes = procs.map((p) => ({ ...p, rssBytes: vmRssBytes(p.pid) }));
  for (const p of processes) {
    tree += p.rssBytes;
    if (p.role !== "tooling") core += p.rssBytes;
    if (p.role === "runtime" || p.role === "server") runtime += p.rssBytes;
  }
  return { core, runtime, tree, processes };
}

/**
 * Our own 250 ms sampler of the served processes: the runtime-only peak (the handle's sampler
 * peaks the sum of both workerd processes) and a 1 s timeline, to see when hibernation frees
 * memory, if it does.
 */
class RssTimeline {
  private timer: NodeJS.Timeout | null = null;
  private ticks = 0;
  peakCore = 0;
  peakRuntime = 0;
  readonly points: Array<{ t: number; phase: string; coreMB: number; runtimeMB: number }> = [];
  phase = "baseline";

  constructor(
    private procs: ServedProcess[],
    private readonly refresh: () => ServedProcess[],
    private readonly startedAt: number,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  sample(): RssReading {
    // A late or restarted workerd gets new pids; look again every 5 s.
    if (this.ticks % 20 === 0) this.procs = this.refresh();
    const r = readRss(this.procs);
    this.peakCore = Math.max(this.peakCore, r.core);
    this.peakRuntime = Math.max(this.peakRuntime, r.runtime);
    if (this.ticks % (1000 / SAMPLE_MS) === 0) {
      this.points.push({
        t: Math.round((performance.now() - this.startedAt) / 100) / 10,
        phase: this.phase,
        coreMB: round1(r.core / MB),
        runtimeMB: round1(r.runtime / MB),
      });
    }
    this.ticks++;
    return r;
  }
}

// ---------------------------------------------------------------------------------------------
// Wire frames: y-websocket framing, optionally prefixed with Hocuspocus's document address.

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const MSG_HP_AUTH = 2;
const MSG_HP_SYNC_REPLY = 4;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;
const SYNC_UPDATE = 2;

function frame(prefix: Uint8Array | null, write: (enc: encoding.Encoder) => void): Uint8Array {
  const enc = encoding.createEncoder();
  if (prefix !== null) encoding.writeUint8Array(enc, prefix);
  write(enc);
  return encoding.toUint8Array(enc);
}

function syncFrame(prefix: Uint8Array | null, sub: number, payload: Uint8Array): Uint8Array {
  return frame(prefix, (enc) => {
    encoding.writeVarUint(enc, MSG_SYNC);
    encoding.writeVarUint(enc, sub);
    encoding.writeVarUint8Array(enc, payload);
  });
}

function awarenessFrame(
  prefix: Uint8Array | null,
  clientId: number,
  clock: number,
  state: string,
): Uint8Array {
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, 1);
  encoding.writeVarUint(inner, clientId);
  encoding.writeVarUint(inner, clock);
  encoding.writeVarString(inner, state);
  return frame(prefix, (enc) => {
    encoding.writeVarUint(enc, MSG_AWARENESS);
    encoding.writeVarUint8Array(enc, encoding.toUint8Array(inner));
  });
}

/** Hocuspocus accepts nothing else before this: Auth, token type, any token (no hook checks it). */
function authFrame(prefix: Uint8Array): Uint8Array {
  return frame(prefix, (enc) => {
    encoding.writeVarUint(enc, MSG_HP_AUTH);
    encoding.writeVarUint(enc, 0);
    encoding.writeVarString(enc, "token");
  });
}

function varString(s: string): Uint8Array {
  const enc = encoding.createEncoder();
  encoding.writeVarString(enc, s);
  return encoding.toUint8Array(enc);
}

// What a client with an empty Y.Doc announces: its state vector, and (answering the server's
// step 1 in advance) an update that adds nothing. No Y.Doc per client is needed.
const EMPTY_STATE_VECTOR = Y.encodeStateVector(new Y.Doc());
const EMPTY_UPDATE = Y.encodeStateAsUpdate(new Y.Doc());

/** One update inserting `bytes` characters; every room gets the same one (rooms are separate docs). */
function documentUpdate(bytes: number): Uint8Array {
  const doc = new Y.Doc();
  doc.clientID = 7; // below the awareness clientIDs; any value works
  let text = "";
  // Varied characters, as typed text would be.
  for (let i = 0; i < bytes; i++) text += String.fromCharCode(97 + ((i * 7) % 26));
  doc.getText("t").insert(0, text);
  const update = Y.encodeStateAsUpdate(doc);
  doc.destroy();
  return update;
}

/** True for the server's answer to our sync step 1 (sync step 2, or Hocuspocus's SyncReply). */
function isSyncStep2(data: Buffer, hocuspocus: boolean): boolean {
  try {
    const dec = decoding.createDecoder(data);
    if (hocuspocus) decoding.readVarString(dec);
    const type = decoding.readVarUint(dec);
    if (type !== MSG_SYNC && !(hocuspocus && type === MSG_HP_SYNC_REPLY)) return false;
    return decoding.readVarUint(dec) === SYNC_STEP2;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Clients.

interface IdleClient {
  id: number;
  roomIndex: number;
  room: string;
  url: string;
  prefix: Uint8Array | null;
  writesDocument: boolean;
  clientId: number;
  clock: number;
  ws: WebSocket | null;
  open: boolean;
  greeted: boolean;
}

interface ClientStats {
  attempts: number;
  retries: number;
  failures: number;
  /** Why attempts failed: message -> count (retried ones included). */
  errors: Map<string, number>;
  /** Sockets that closed after opening, while the measurement ran: "code reason" -> count. */
  closes: Map<string, number>;
  measuring: boolean;
  open: number;
  /** Most sockets open at once: a server that dies mid-run loses its sockets after this. */
  maxOpen: number;
  /** Clients never tried because the server stopped accepting (see connectAll). */
  skipped: number;
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function awarenessState(client: IdleClient): string {
  return JSON.stringify({ user: `u${client.id}`, cursor: null });
}

function connectOnce(
  client: IdleClient,
  stats: ClientStats,
  docUpdate: Uint8Array | null,
): Promise<string | null> {
  return new Promise((done) => {
    let settled = false;
    const settle = (error: string | null): void => {
      if (settled) return;
      settled = true;
      done(error);
    };
    const hocuspocus = client.prefix !== null;
    const ws = new WebSocket(client.url, {
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    client.ws = ws;
    ws.on("open", () => {
      client.open = true;
      stats.open++;
      stats.maxOpen = Math.max(stats.maxOpen, stats.open);
      const prefix = client.prefix;
      if (prefix !== null) ws.send(authFrame(prefix));
      ws.send(syncFrame(prefix, SYNC_STEP1, EMPTY_STATE_VECTOR));
      ws.send(syncFrame(prefix, SYNC_STEP2, EMPTY_UPDATE));
      client.clock = 1; // a new awareness client starts above clock 0
      ws.send(awarenessFrame(prefix, client.clientId, client.clock, awarenessState(client)));
      if (client.writesDocument && docUpdate !== null) {
        ws.send(syncFrame(prefix, SYNC_UPDATE, docUpdate));
      }
      settle(null);
    });
    ws.on("message", (data, isBinary) => {
      // Only the first answer matters; everything else is read and dropped, like an idle tab.
      if (client.greeted || !isBinary || !Buffer.isBuffer(data)) return;
      if (isSyncStep2(data, hocuspocus)) client.greeted = true;
    });
    ws.on("error", (err) => {
      if (!client.open) settle(err.message);
    });
    ws.on("close", (code, reason) => {
      // A failed attempt's late close must not touch the retry's state.
      if (client.ws !== ws) {
        settle(`closed before open (${code})`);
        return;
      }
      if (client.open && stats.measuring) {
        bump(stats.closes, `${code} ${reason.toString("utf8")}`.trim());
      }
      const wasOpen = client.open;
      if (wasOpen) stats.open--;
      client.open = false;
      if (!wasOpen) settle(`closed before open (${code})`);
    });
  });
}

async function connectAll(
  clients: IdleClient[],
  concurrency: number,
  stats: ClientStats,
  docUpdate: Uint8Array | null,
): Promise<void> {
  let next = 0;
  // A server that died refuses everything; stop after this many clients in a row failed every
  // attempt, rather than spend minutes on backoffs.
  let failedInARow = 0;
  const worker = async (): Promise<void> => {
    while (next < clients.length) {
      if (failedInARow >= 2 * concurrency) {
        stats.skipped = clients.length - next;
        next = clients.length;
        break;
      }
      const client = clients[next++]!;
      for (let attempt = 1; attempt <= CONNECT_ATTEMPTS; attempt++) {
        stats.attempts++;
        const error = await connectOnce(client, stats, docUpdate);
        if (error === null) {
          failedInARow = 0;
          break;
        }
        bump(stats.errors, error);
        client.ws?.terminate();
        client.ws = null;
        if (attempt === CONNECT_ATTEMPTS) {
          stats.failures++;
          failedInARow++;
          break;
        }
        stats.retries++;
        await sleep(250 * attempt); // back off: a refused connect is usually a full backlog
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, clients.length) }, worker));
}

/** Re-sends each client's awareness (clock + 1) once per period, spread evenly over it. */
function startKeepalive(clients: IdleClient[], periodSeconds: number): () => void {
  let k = 0;
  const perTick = Math.max(1, Math.ceil((clients.length * SAMPLE_MS) / (periodSeconds * 1000)));
  const timer = setInterval(() => {
    for (let i = 0; i < perTick && clients.length > 0; i++) {
      const client = clients[k++ % clients.length]!;
      if (!client.open || client.ws === null) continue;
      client.clock++;
      client.ws.send(
        awarenessFrame(client.prefix, client.clientId, client.clock, awarenessState(client)),
      );
    }
  }, SAMPLE_MS);
  return () => clearInterval(timer);
}

// ---------------------------------------------------------------------------------------------
// Halo's admin figures: loaded rooms and sockets per shard.

interface ShardFigures {
  loadedRooms: number;
  sockets: number;
  shards: Array<{ shard: string; loadedRooms: number; sockets: number }>;
}

function numberField(o: object, key: string): number {
  const v: unknown = (o as Record<string, unknown>)[key];
  return typeof v === "number" ? v : Number.NaN;
}

/**
 * GET /v1/admin/shards. Note that asking wakes every shard: a shard that hibernated comes back
 * with no room loaded (rooms load on their next frame), so loadedRooms = 0 here while sockets
 * are still open shows that the instance was evicted and re-created.
 */
async function haloShardFigures(port: number): Promise<ShardFigures | string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v1/admin/shards`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      signal: AbortSignal.timeout(10_000),
    });
    const body: unknown = await res.json();
    if (!res.ok || typeof body !== "object" || body === null || !("shards" in body)) {
      return `HTTP ${res.status}: ${JSON.stringify(body).slice(0, 200)}`;
    }
    const list = Array.isArray(body.shards) ? (body.shards as unknown[]) : [];
    const shards = list
      .filter((s): s is object => typeof s === "object" && s !== null)
      .map((s) => {
        const name = (s as Record<string, unknown>).name;
        return {
          shard:
            typeof name === "string"
              ? name
              : `${String((s as Record<string, unknown>).region)}:${numberField(s, "index")}`,
          loadedRooms: numberField(s, "loadedRooms"),
          sockets: numberField(s, "sockets"),
        };
      });
    return {
      loadedRooms: shards.reduce((a, s) => a + s.loadedRooms, 0),
      sockets: shards.reduce((a, s) => a + s.sockets, 0),
      shards,
    };
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Halo's JavaScript heap, through workerd's inspector (bench/cpu-profile.ts). */
class HeapProbe {
  private constructor(private readonly session: InspectorSession) {}

  static async open(port: number): Promise<HeapProbe> {
    return new HeapProbe(await InspectorSession.open(port));
  }

  async usage(): Promise<{ usedBytes: number; totalBytes: number } | null> {
    const result = await this.session.callWithin<{ usedSize?: unknown; totalSize?: unknown }>(
      "Runtime.getHeapUsage",
      5000,
    );
    if (result === null) return null;
    const { usedSize, totalSize } = result;
    if (typeof usedSize !== "number" || typeof totalSize !== "number") return null;
    return { usedBytes: usedSize, totalBytes: totalSize };
  }

  /** A full GC, which an idle isolate never runs by itself: what could V8 give back? */
  async collectGarbage(): Promise<void> {
    await this.session.callWithin("HeapProfiler.collectGarbage", 30_000);
  }

  close(): void {
    this.session.close();
  }
}

// ---------------------------------------------------------------------------------------------
// One measurement: a fresh server, N clients, snapshots.

interface RunResult {
  server: ServerName;
  clients: number;
  rooms: number;
  perRoom: number;
  docBytes: number;
  keepaliveSeconds: number;
  connected: number;
  connectFailures: number;
  connectRetries: number;
  /** Clients never tried: the server had stopped accepting connections. */
  connectSkipped: number;
  connectErrors: Record<string, number>;
  /** Most sockets open at once. */
  maxOpen: number;
  /** Served processes (see servedProcesses) alive at the baseline but gone by the end. */
  lostProcesses: string[];
  connectSeconds: number;
  greeted: number;
  greetSeconds: number;
  /** After the warm-up rooms connected; null without a warm-up. */
  warm: Snapshot | null;
  /** Open sockets at the last idle checkpoint. */
  openAfterIdle: number;
  /** Sockets closed by the server (or dropped) after opening: "code reason" -> count. */
  closes: Record<string, number>;
  snapshots: Snapshot[];
  baseline: Snapshot;
  afterConnect: Snapshot;
  afterIdle: Snapshot;
  /** ServerHandle.peakCoreRssBytes(): workerd (runtime + proxy) for Halo, the process for peers. */
  peakCoreBytes: number;
  /** Our sampler's peak of Halo's runtime workerd alone (the process itself for the peers). */
  peakRuntimeBytes: number;
  peakTreeBytes: number;
  peakByName: Record<string, number>;
  halo: {
    /** After the warm-up: which shards it reached. */
    warm: ShardFigures | string | null;
    beforeIdle: ShardFigures | string;
    afterIdle: ShardFigures | string;
    /** RSS once the admin call re-created the hibernated shards. */
    afterWake: Snapshot | null;
    /** With --heap: after a full GC forced through the inspector, before the admin call. */
    afterGc: Snapshot | null;
  } | null;
  timeline: RssTimeline["points"];
  serverLogTail: string;
}

/**
 * Served processes that exited. One replaced by a new process of the same role was restarted:
 * `wrangler dev` rebuilds and restarts its runtime when a source file changes, closing every
 * socket (so a run must not overlap edits to the repository).
 */
function lostProcesses(before: ServedProcess[], after: ServedProcess[]): string[] {
  const out: string[] = [];
  for (const p of before) {
    if (p.role === "tooling" || readText(`/proc/${p.pid}/stat`) !== null) continue;
    const successor = after.find((q) => q.role === p.role && q.name === p.name);
    out.push(
      `${p.role} ${p.name} pid ${p.pid}` +
        (successor === undefined ? " exited" : ` restarted as pid ${successor.pid}`),
    );
  }
  return out;
}

/** Defaults, except rooms bigger than Halo's default cap of 1,000 sockets per room. */
function haloConfig(perRoom: number): string {
  return haloBenchConfig(
    perRoom > 1000 ? { limits: { maxConnectionsPerRoom: Math.min(perRoom, 32_768) } } : {},
  );
}

async function startServer(
  name: ServerName,
  port: number,
  perRoom: number,
  inspectorPort: number | undefined,
) {
  switch (name) {
    case "halo":
      return startHalo(port, {
        ...(inspectorPort === undefined ? {} : { inspectorPort }),
        vars: { HALO_CONFIG: haloConfig(perRoom), HALO_ADMIN_TOKEN: ADMIN_TOKEN },
      });
    case "halo-miniflare":
      return startHaloMiniflare(port, {
        ...(inspectorPort === undefined ? {} : { inspectorPort }),
        vars: { HALO_CONFIG: haloConfig(perRoom), HALO_ADMIN_TOKEN: ADMIN_TOKEN },
      });
    case "y-websocket-server":
      return startYWebsocketServer(port);
    case "hocuspocus":
      return startHocuspocus(port);
  }
}

async function runOne(name: ServerName, n: number, opts: Options): Promise<RunResult> {
  const rooms = Math.ceil(n / opts.perRoom);
  const port = await getFreePort();
  const inspectorPort = opts.heap && isHalo(name) ? await getFreePort() : undefined;
  const handle = await startServer(name, port, opts.perRoom, inspectorPort);
  const readyAt = performance.now();
  let heapProbe: HeapProbe | null = null;
  if (inspectorPort !== undefined) {
    try {
      heapProbe = await HeapProbe.open(inspectorPort);
    } catch (err) {
      log(`  heap probe unavailable: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const framing: Framing = handle.framing;
  const hocuspocus = framing === "hocuspocus";
  const stats: ClientStats = {
    attempts: 0,
    retries: 0,
    failures: 0,
    errors: new Map(),
    closes: new Map(),
    measuring: true,
    open: 0,
    maxOpen: 0,
    skipped: 0,
  };
  const clients: IdleClient[] = [];
  const timeline = new RssTimeline(
    servedProcesses(name, handle, port),
    () => servedProcesses(name, handle, port),
    readyAt,
  );
  const snapshots: Snapshot[] = [];
  const snapshot = async (label: string): Promise<Snapshot> => {
    const jsHeap = heapProbe === null ? null : await heapProbe.usage();
    const r = timeline.sample();
    const s: Snapshot = {
      label,
      atSeconds: round1((performance.now() - readyAt) / 1000),
      coreBytes: r.core,
      runtimeBytes: r.runtime,
      treeBytes: r.tree,
      openClients: clients.reduce((a, c) => a + (c.open ? 1 : 0), 0),
      generatorRssBytes: process.memoryUsage.rss(),
      processes: r.processes,
      jsHeap,
    };
    snapshots.push(s);
    log(
      `  ${name} N=${n} ${label}: core ${mb(s.coreBytes)} MB` +
        (name === "halo" ? ` (runtime workerd ${mb(s.runtimeBytes)} MB)` : "") +
        (jsHeap === null ? "" : `, JS heap ${mb(jsHeap.usedBytes)}/${mb(jsHeap.totalBytes)} MB`) +
        `, open ${s.openClients}`,
    );
    return s;
  };
  let stopKeepalive: (() => void) | null = null;
  try {
    timeline.start();
    await sleep(opts.settleSeconds * 1000);
    const baseline = await snapshot("baseline");
    const initialProcs = servedProcesses(name, handle, port);

    // Rooms in a fresh namespace per run, clients interleaved by room so each room fills up
    // while the others do (as clients arrive in a real deployment).
    const prefix = `idle-${Date.now().toString(36)}`;
    const idBase = 1000 + Math.floor(Math.random() * 2 ** 29);
    for (let i = 0; i < n; i++) {
      const r = i % rooms;
      const room = `${prefix}-${r}`;
      clients.push({
        id: i,
        roomIndex: r,
        room,
        url: handle.url(room),
        prefix: hocuspocus ? varString(room) : null,
        writesDocument: i < rooms, // the first client of each room
        clientId: idBase + i,
        clock: 0,
        ws: null,
        open: false,
        greeted: false,
      });
    }
    const docUpdate = opts.docBytes > 0 ? documentUpdate(opts.docBytes) : null;

    // Waits until every open client's greeting was answered (the server processed its step 1,
    // and in order the rest of its frames), then lets the room broadcasts settle.
    let greetSeconds = 0;
    const connectAndGreet = async (batch: IdleClient[]): Promise<void> => {
      await connectAll(batch, opts.concurrency, stats, docUpdate);
      const greetStart = performance.now();
      const greetDeadline = greetStart + 30_000 + batch.length * 3;
      while (performance.now() < greetDeadline) {
        if (batch.every((c) => c.greeted || !c.open)) break;
        await sleep(100);
      }
      greetSeconds += (performance.now() - greetStart) / 1000;
      await sleep(opts.settleSeconds * 1000);
    };

    const connectStart = performance.now();
    const warmBatch = clients.filter((c) => c.roomIndex < opts.warmRooms);
    let warm: Snapshot | null = null;
    let warmFigures: ShardFigures | string | null = null;
    if (warmBatch.length > 0 && warmBatch.length < clients.length) {
      timeline.phase = "warm";
      await connectAndGreet(warmBatch);
      warm = await snapshot(`warm (${Math.min(opts.warmRooms, rooms)} rooms)`);
      if (isHalo(name)) warmFigures = await haloShardFigures(port);
    }
    timeline.phase = "connect";
    await connectAndGreet(clients.filter((c) => warm === null || c.roomIndex >= opts.warmRooms));
    const connectSeconds = (performance.now() - connectStart) / 1000 - greetSeconds;
    const connected = clients.reduce((a, c) => a + (c.open ? 1 : 0), 0);
    const greeted = clients.reduce((a, c) => a + (c.greeted ? 1 : 0), 0);
    log(
      `  ${name} N=${n}: ${connected}/${n} open, ${greeted} greeted` +
        ` (${stats.failures} failed, ${stats.retries} retries)`,
    );
    const afterConnect = await snapshot("after connect");
    const beforeIdle = isHalo(name) ? await haloShardFigures(port) : null;

    timeline.phase = "idle";
    if (opts.keepaliveSeconds > 0) stopKeepalive = startKeepalive(clients, opts.keepaliveSeconds);
    const idleStart = performance.now();
    let afterIdle = afterConnect;
    for (const seconds of opts.idleSeconds) {
      if (stats.open === 0) break; // nothing left to hold (the server dropped everyone)
      await sleep(Math.max(0, idleStart + seconds * 1000 - performance.now()));
      afterIdle = await snapshot(`idle ${seconds} s`);
    }
    stopKeepalive?.();
    stopKeepalive = null;
    // Read before the admin call and teardown, which wake or close everything.
    const openAfterIdle = afterIdle.openClients;
    stats.measuring = false;
    // Diagnostic only (--heap), after the measured figures: do evicted shards leave garbage?
    let afterGc: Snapshot | null = null;
    if (heapProbe !== null && stats.open > 0) {
      await heapProbe.collectGarbage();
      await sleep(1000);
      afterGc = await snapshot("after forced GC");
    }

    let haloFigures: RunResult["halo"] = null;
    if (isHalo(name) && beforeIdle !== null) {
      timeline.phase = "admin wake";
      const figures = await haloShardFigures(port);
      await sleep(1000);
      haloFigures = {
        warm: warmFigures,
        beforeIdle,
        afterIdle: figures,
        afterWake: await snapshot("after admin wake"),
        afterGc,
      };
    }
    timeline.stop();

    return {
      server: name,
      clients: n,
      rooms,
      perRoom: opts.perRoom,
      docBytes: opts.docBytes,
      keepaliveSeconds: opts.keepaliveSeconds,
      connected,
      connectFailures: stats.failures,
      connectRetries: stats.retries,
      connectSkipped: stats.skipped,
      maxOpen: stats.maxOpen,
      lostProcesses: lostProcesses(initialProcs, servedProcesses(name, handle, port)),
      connectErrors: Object.fromEntries(stats.errors),
      connectSeconds: round1(connectSeconds),
      greeted,
      greetSeconds: round1(greetSeconds),
      warm,
      openAfterIdle,
      closes: Object.fromEntries(stats.closes),
      snapshots,
      baseline,
      afterConnect,
      afterIdle,
      peakCoreBytes: Math.max(handle.peakCoreRssBytes(), timeline.peakCore),
      peakRuntimeBytes: timeline.peakRuntime,
      peakTreeBytes: handle.peakRssBytes(),
      peakByName: handle.peakRssByName(),
      halo: haloFigures,
      timeline: timeline.points,
      serverLogTail: handle.logTail(),
    };
  } finally {
    heapProbe?.close();
    stopKeepalive?.();
    timeline.stop();
    stats.measuring = false;
    await handle.stop();
    for (const c of clients) c.ws?.terminate();
    await sleep(500); // let the terminated sockets' handles go before the next server starts
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function mb(bytes: number): string {
  return (bytes / MB).toFixed(1);
}

function kb(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / 1024).toFixed(1) : "n/a";
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a / b) && b > 0 ? `${(a / b).toFixed(2)}x` : "n/a";
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** A row of the main table: Halo appears twice, with and without wrangler's proxy workerd. */
interface Row {
  label: string;
  server: ServerName;
  clients: number;
  rooms: number;
  connected: number;
  maxOpen: number;
  openAfterIdle: number;
  /** The server lost a process or took no client: only the peak figures mean anything. */
  broken: boolean;
  baseline: number;
  /** After the warm-up rooms (NaN without one). */
  warm: number;
  afterConnect: number;
  afterIdle: number;
  peak: number;
  /** (after connect − baseline) / connected. */
  perConnConnect: number;
  /** (after idle − baseline) / connected: the headline figure. */
  perConnIdle: number;
  /** (peak − baseline) / connected. */
  perConnPeak: number;
  /** (after idle − warm) / (connected − connected at warm): one more connection, one-offs excluded. */
  perConnIdleMarginal: number;
  /** (after idle − baseline) / rooms: a room with its sockets and document, after idle. */
  perRoomIdle: number;
}

function rowsOf(r: RunResult): Row[] {
  const make = (label: string, pick: (s: Snapshot) => number, peak: number): Row => {
    const base = pick(r.baseline);
    // A server that died or took no client has no per-connection figure after connect; its
    // peak still divides by the sockets it held at most.
    const broken = r.connected === 0 || r.lostProcesses.length > 0;
    const n = broken ? Number.NaN : r.connected;
    const warm = r.warm === null ? base : pick(r.warm);
    const added = broken ? Number.NaN : Math.max(1, r.connected - (r.warm?.openClients ?? 0));
    return {
      label,
      server: r.server,
      clients: r.clients,
      rooms: r.rooms,
      connected: r.connected,
      maxOpen: r.maxOpen,
      openAfterIdle: r.openAfterIdle,
      broken,
      baseline: base,
      warm: r.warm === null ? Number.NaN : warm,
      afterConnect: pick(r.afterConnect),
      afterIdle: pick(r.afterIdle),
      peak,
      perConnConnect: (pick(r.afterConnect) - base) / n,
      perConnIdle: (pick(r.afterIdle) - base) / n,
      perConnPeak: (peak - base) / Math.max(1, r.maxOpen),
      perConnIdleMarginal: (pick(r.afterIdle) - warm) / added,
      perRoomIdle: broken ? Number.NaN : (pick(r.afterIdle) - base) / r.rooms,
    };
  };
  if (r.server !== "halo") return [make(r.server, (s) => s.coreBytes, r.peakCoreBytes)];
  // wrangler dev: with and without its proxy workerd.
  return [
    make("halo (workerd: runtime + dev proxy)", (s) => s.coreBytes, r.peakCoreBytes),
    make("halo (runtime workerd only)", (s) => s.runtimeBytes, r.peakRuntimeBytes),
  ];
}

function renderMarkdown(results: RunResult[], opts: Options, header: string): string {
  const lines: string[] = [header, ""];
  const idleLabel = `${opts.idleSeconds[opts.idleSeconds.length - 1] ?? 0} s`;
  lines.push(
    `| server | clients | rooms | connected ok | open after idle | baseline MB | warm MB | after connect MB | after idle (${idleLabel}) MB | peak MB | KB/conn (idle) | KB/conn (peak) | marginal KB/conn (idle) | KB/room (idle) |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  const rows = results.flatMap(rowsOf);
  for (const row of rows) {
    lines.push(
      `| ${row.label} | ${row.clients} | ${row.rooms} | ${row.connected}${row.maxOpen > row.connected ? ` (max ${row.maxOpen})` : ""} | ${row.openAfterIdle} | ${mb(row.baseline)} | ${mb(row.warm)} | ${mb(row.afterConnect)} | ${mb(row.afterIdle)} | ${mb(row.peak)} | ${kb(row.perConnIdle)} | ${kb(row.perConnPeak)} | ${kb(row.perConnIdleMarginal)} | ${kb(row.perRoomIdle)} |`,
    );
  }

  lines.push(
    "",
    "Halo / peer (lower is better for Halo):",
    "",
    "| clients | Halo measured as | peer | KB/conn (idle) | KB/conn (peak) | after idle MB | peak MB |",
    "|---:|---|---|---:|---:|---:|---:|",
  );
  for (const n of opts.clients) {
    const halos = rows.filter((r) => isHalo(r.server) && r.clients === n);
    const peers = rows.filter((r) => !isHalo(r.server) && r.clients === n);
    for (const h of halos) {
      for (const p of peers) {
        lines.push(
          `| ${n} | ${h.label.replace(/^halo /, "")} | ${p.label} | ${ratio(h.perConnIdle, p.perConnIdle)} | ${ratio(h.perConnPeak, p.perConnPeak)} | ${h.broken || p.broken ? "n/a" : ratio(h.afterIdle, p.afterIdle)} | ${ratio(h.peak, p.peak)} |`,
        );
      }
    }
  }

  lines.push("", "Per run:", "");
  for (const r of results) {
    const parts = [`- ${r.server} N=${r.clients}: connect ${r.connectSeconds} s`];
    parts.push(`at most ${r.maxOpen} open at once, ${r.greeted} greeted in ${r.greetSeconds} s`);
    if (r.connectFailures > 0 || r.connectRetries > 0) {
      parts.push(
        `${r.connectFailures} failed after ${CONNECT_ATTEMPTS} attempts, ${r.connectRetries} retries (${describe(r.connectErrors)})`,
      );
    }
    if (r.connectSkipped > 0) parts.push(`${r.connectSkipped} not tried (server down)`);
    if (r.lostProcesses.length > 0)
      parts.push(`**server process lost: ${r.lostProcesses.join(", ")}**`);
    if (Object.keys(r.closes).length > 0) parts.push(`closed by server: ${describe(r.closes)}`);
    const gen = r.afterConnect.generatorRssBytes;
    parts.push(`generator RSS ${mb(gen)} MB`);
    if (r.halo !== null) {
      if (r.halo.warm !== null) parts.push(`warm-up reached ${describeWarm(r.halo.warm)}`);
      parts.push(`shards before idle: ${describeShards(r.halo.beforeIdle)}`);
      parts.push(`after idle: ${describeShards(r.halo.afterIdle)}`);
      if (r.halo.afterWake !== null && typeof r.halo.afterIdle !== "string") {
        parts.push(
          `after the admin call woke them: workerd ${mb(r.halo.afterWake.coreBytes)} MB (runtime ${mb(r.halo.afterWake.runtimeBytes)} MB)`,
        );
      }
    }
    const heaps = [
      r.baseline,
      r.warm,
      r.afterConnect,
      r.afterIdle,
      r.halo?.afterGc ?? null,
      r.halo?.afterWake ?? null,
    ]
      .filter((x): x is Snapshot => x !== null && x.jsHeap !== null)
      .map((x) => `${x.label} ${mb(x.jsHeap?.usedBytes ?? 0)} (RSS ${mb(x.coreBytes)})`);
    if (heaps.length > 0) parts.push(`isolate JS heap used (MB): ${heaps.join(", ")}`);
    lines.push(`${parts.join("; ")}.`);
    lines.push(
      `  idle timeline (core MB, every 5 s from the post-connect snapshot): ${idleTrace(r)}`,
    );
  }
  lines.push(
    "",
    "Notes:",
    "- MB are VmRSS in MiB, read from /proc at each moment; peak is the 250 ms sampler's maximum.",
    "  Baseline: server ready, no client.",
    '- Halo\'s "workerd" rows add both workerd processes `wrangler dev` runs: the runtime and the',
    "  dev proxy in front of it, which every client socket also passes through (a deployment has no",
    '  such proxy); "runtime workerd only" leaves the proxy out. Peers: their whole Node process.',
    "- KB/conn = (RSS − baseline) / connected clients (n/a if the server died); KB/conn (peak) divides",
    "  by the most sockets open at once. Marginal KB/conn = (RSS after idle − warm) /",
    `  (clients connected after the ${opts.warmRooms} warm-up rooms), which leaves one-off costs out; for`,
    "  the Node peers it moves with when V8 last collected garbage, so read it at large N only.",
    `- KB/room (idle) = (RSS after idle − baseline) / rooms: a room with its ${opts.perRoom} open sockets,`,
    `  its ${opts.docBytes}-byte document and awareness, as the server holds them after the idle period.`,
    "  For Halo the sockets stay open in workerd while a hibernated shard's instance (its rooms'",
    "  Y.Docs and awareness) is evicted, the document then living in SQLite on disk.",
    opts.keepaliveSeconds > 0
      ? `- Clients renewed their awareness every ${opts.keepaliveSeconds} s.`
      : "- Clients are silent after their greeting: no awareness renewal (stock y-protocols clients\n" +
          "  renew every 15 s; Halo's client does not, so that shards can hibernate). Hocuspocus closes\n" +
          "  a connection silent for over 60 s at its next 60 s check (4408 Connection Timeout): see\n" +
          "  open after idle.",
  );
  return lines.join("\n");
}

function describe(map: Record<string, number>): string {
  return Object.entries(map)
    .map(([k, v]) => `${v}× ${k}`)
    .join(", ");
}

function describeWarm(f: ShardFigures | string): string {
  if (typeof f === "string") return `? shards (admin call failed: ${f})`;
  const reached = f.shards.filter((s) => s.sockets > 0).length;
  return `${reached}/${f.shards.length} shards`;
}

function describeShards(f: ShardFigures | string): string {
  if (typeof f === "string") return `admin call failed (${f})`;
  return `${f.loadedRooms} rooms loaded, ${f.sockets} sockets`;
}

function idleTrace(r: RunResult): string {
  const idle = r.timeline.filter((p) => p.phase === "idle");
  const t0 = idle[0]?.t ?? 0;
  const out: string[] = [];
  let nextMark = 0;
  for (const p of idle) {
    if (p.t - t0 + 0.05 < nextMark) continue;
    out.push(
      `${Math.round(p.t - t0)}s ${p.coreMB}${r.server === "halo" ? ` (${p.runtimeMB})` : ""}`,
    );
    nextMark += 5;
  }
  return out.length > 0 ? out.join(", ") : "(no idle phase: no socket was open)";
}

// ---------------------------------------------------------------------------------------------
// CLI.

function parseArgs(argv: string[]): Options {
  const opts: Options = { ...DEFAULTS };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  const list = (raw: string, flag: string, min: number): number[] =>
    raw
      .split(",")
      .filter((s) => s !== "")
      .map((s) => {
        const x = Number(s);
        if (!Number.isFinite(x) || x < min) throw new Error(`${flag}: "${s}" must be >= ${min}`);
        return x;
      });
  const one = (raw: string, flag: string, min: number): number => {
    const [x] = list(raw, flag, min);
    if (x === undefined) throw new Error(`${flag} needs a number`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case "--clients":
        opts.clients = list(value(i++, arg), arg, 1).map(Math.round);
        break;
      case "--per-room":
        opts.perRoom = Math.round(one(value(i++, arg), arg, 1));
        break;
      case "--idle":
        opts.idleSeconds = list(value(i++, arg), arg, 0).sort((a, b) => a - b);
        break;
      case "--servers": {
        const names = value(i++, arg)
          .split(",")
          .filter((s) => s !== "");
        for (const n of names) {
          if (!(KNOWN_SERVERS as readonly string[]).includes(n)) {
            throw new Error(`unknown server "${n}" (expected ${KNOWN_SERVERS.join(", ")})`);
          }
        }
        opts.servers = names as ServerName[];
        break;
      }
      case "--doc-bytes":
        opts.docBytes = Math.round(one(value(i++, arg), arg, 0));
        break;
      case "--concurrency":
        opts.concurrency = Math.round(one(value(i++, arg), arg, 1));
        break;
      case "--keepalive":
        opts.keepaliveSeconds = one(value(i++, arg), arg, 0);
        break;
      case "--settle":
        opts.settleSeconds = one(value(i++, arg), arg, 0);
        break;
      case "--heap":
        opts.heap = true;
        break;
      case "--warm-rooms":
        opts.warmRooms = Math.round(one(value(i++, arg), arg, 0));
        break;
      default:
        throw new Error(`unknown argument "${arg}"`);
    }
  }
  if (opts.idleSeconds.length === 0) throw new Error("--idle needs at least one checkpoint");
  return opts;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const date = new Date().toISOString();
  const cpu = cpus();
  const machine = {
    cpuModel: cpu[0]?.model ?? "unknown",
    cores: cpu.length,
    totalMemoryBytes: totalmem(),
    node: process.versions.node,
    kernel: release(),
  };
  const header = [
    `# Idle-connection memory (${date})`,
    "",
    `Machine: ${machine.cpuModel}, ${machine.cores} cores, ${mb(machine.totalMemoryBytes)} MB RAM, Node ${machine.node}, Linux ${machine.kernel}.`,
    `Settings: clients ${opts.clients.join(",")}, ${opts.perRoom} per room, idle checkpoints ${opts.idleSeconds.join(",")} s, document ${opts.docBytes} bytes per room, ${opts.warmRooms} warm-up rooms, connect concurrency ${opts.concurrency}, keepalive ${opts.keepaliveSeconds || "off"}.`,
  ].join("\n");
  log(header);

  const outDir = join(PROJECT_ROOT, "bench", "results");
  await mkdir(outDir, { recursive: true });
  const jsonPath = join(outDir, `idle-memory-${date.replace(/[:.]/g, "-")}.json`);
  const results: RunResult[] = [];
  const failures: Array<{ server: ServerName; clients: number; error: string }> = [];
  const save = async (): Promise<string> => {
    const markdown = renderMarkdown(results, opts, header);
    const report = { date, machine, options: opts, results, failures, markdown };
    await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
    return markdown;
  };

  for (const n of opts.clients) {
    for (const server of opts.servers) {
      log(`${server}: ${n} clients in ${Math.ceil(n / opts.perRoom)} rooms`);
      try {
        results.push(await runOne(server, n, opts));
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        failures.push({ server, clients: n, error });
        log(`  ${server} N=${n} failed: ${error}`);
      }
      await save(); // partial results survive an interrupted run
    }
  }
  const markdown = await save();
  process.stdout.write(`${markdown}\n`);
  for (const f of failures)
    process.stdout.write(`\nFAILED ${f.server} N=${f.clients}: ${f.error}\n`);
  process.stdout.write(`\nJSON: ${jsonPath}\n`);
}

const isMain =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);

if (isMain) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
