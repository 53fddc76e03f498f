// Real document workload (issue 8): one client types a real editing trace into a room while
// others watch, on Halo and on the peer servers, one after another in the same run.
//
//   npx tsx bench/trace-replay.ts [--trace automerge-paper] [--watchers 3]
//                                 [--servers halo,y-websocket-server,hocuspocus] [--edits N]
//
// Reports, per server: the time until every watcher's text equals the trace's endContent,
// updates per second (one Yjs update per transaction of the trace, sent as fast as the socket
// drains), and for Halo the bytes stored after compaction against the final document's size.
// Hocuspocus (in memory, no extensions) is driven by the same bare client in its framing: the
// document name before every frame, both ways, an Auth message first, and a keep-alive, since
// it closes a socket that has sent nothing for 60 s and a watcher only listens (see SyncClient).
// Halo runs the deployable bundle in workerd through Miniflare (bench/miniflare-host.ts, no
// `wrangler dev` proxy), with one region (no replication) and its per-connection message limit
// raised: the replay is a throughput test, not a typist. --profile takes a V8 CPU profile of
// Halo's isolate during the replay (bench/cpu-profile.ts).

import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import WebSocket from "ws";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import { type EditingTrace, loadTrace } from "../test/support/traces";
import { type CpuProfile, formatSummary, InspectorSession, summarize } from "./cpu-profile";
import {
  getFreePort,
  haloBenchConfig,
  PROJECT_ROOT,
  startHaloMiniflare,
  startHocuspocus,
  startYWebsocketServer,
} from "./servers";

const ADMIN_TOKEN = "bench-admin-token-not-for-production";

/** One region, no replication, and a message limit no replay reaches (see the header). */
const HALO_BENCH_CONFIG = haloBenchConfig({
  limits: { messagesPerSecond: 1_000_000, messageBurst: 1_000_000 },
});

interface Target {
  name: string;
  url(room: string): string;
  /** Hocuspocus: every frame names its document (see SyncClient), as all rooms share one URL. */
  hocuspocus?: boolean;
  /** Bytes stored for the room after compaction, where the server can say. */
  storedBytes?(room: string): Promise<number | null>;
  /** Halo with `--profile`: the inspector session that profiles the replay. */
  profiler?: InspectorSession;
  stop(): Promise<void>;
}

async function startTarget(name: string, profile: boolean): Promise<Target> {
  if (name === "halo") {
    const port = await getFreePort();
    const inspectorPort = profile ? await getFreePort() : undefined;
    const server = await startHaloMiniflare(port, {
      vars: { HALO_CONFIG: HALO_BENCH_CONFIG, HALO_ADMIN_TOKEN: ADMIN_TOKEN },
      inspectorPort,
    });
    const inspector =
      inspectorPort === undefined ? null : await InspectorSession.open(inspectorPort);
    return {
      name,
      url: (room) => server.url(room),
      storedBytes: async (room) => {
        const response = await fetch(
          `http://127.0.0.1:${port}/v1/admin/rooms/${room}?region=wnam`,
          { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
        );
        if (!response.ok) return null;
        const body = (await response.json()) as {
          storage?: { snapshotBytes: number; logBytes: number };
        };
        return body.storage ? body.storage.snapshotBytes + body.storage.logBytes : null;
      },
      profiler: inspector ?? undefined,
      stop: async () => {
        inspector?.close();
        await server.stop();
      },
    };
  }
  if (name === "y-websocket-server") {
    const handle = await startYWebsocketServer(await getFreePort());
    return { name, url: (room) => handle.url(room), stop: () => handle.stop() };
  }
  if (name === "hocuspocus") {
    const handle = await startHocuspocus(await getFreePort());
    return { name, url: (room) => handle.url(room), hocuspocus: true, stop: () => handle.stop() };
  }
  throw new Error(`unknown server ${name} (halo, y-websocket-server, hocuspocus)`);
}

// Sync is y-websocket's type 0; the HP_ values are @hocuspocus/server's MessageType and AuthMessageType.
const MSG_SYNC = 0;
const HP_AUTH = 2;
const HP_QUERY_AWARENESS = 3;
const HP_SYNC_REPLY = 4;
const HP_CLOSE = 7;
const HP_AUTH_TOKEN = 0;
const HP_AUTH_PERMISSION_DENIED = 1;

/**
 * A bare sync client: a Y.Doc synced over one socket. Given `hocuspocusDocument`, it speaks
 * Hocuspocus's framing: that name (varString) before every frame, both ways, and an Auth message
 * first. Every frame means every one, updates and sync answers included: Hocuspocus reads a frame
 * without the name as one for another, unauthenticated, document, queues it, and closes the
 * socket past 1000 of them, so the watchers never see the writer's updates.
 */
class SyncClient {
  readonly doc = new Y.Doc();
  private readonly ws: WebSocket;
  /** varString(document name) for Hocuspocus, empty for y-websocket. */
  private readonly prefix: Uint8Array;
  private keepAlive: NodeJS.Timeout | undefined;
  readonly opened: Promise<void>;
  synced = false;
  /** Set when the server refuses or closes us: waiting on convergence would then be pointless. */
  failure: string | null = null;

  constructor(url: string, hocuspocusDocument?: string) {
    const prefix = encoding.createEncoder();
    if (hocuspocusDocument !== undefined) encoding.writeVarString(prefix, hocuspocusDocument);
    this.prefix = encoding.toUint8Array(prefix);
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws.binaryType = "nodebuffer";
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => {
        if (hocuspocusDocument !== undefined) {
          // Hocuspocus queues everything else for the document until this is accepted (1000
          // frames at most, then it closes the socket: the writer types only once synced).
          this.send(HP_AUTH, (e) => {
            encoding.writeVarUint(e, HP_AUTH_TOKEN);
            encoding.writeVarString(e, "bench"); // any token: the server has no onAuthenticate hook
          });
          // Hocuspocus closes a socket it has heard nothing from for `timeout` (60 s), and a
          // watcher only listens: send a message it answers with nothing (no reply callback on
          // a socket connection), well within that.
          this.keepAlive = setInterval(() => this.send(HP_QUERY_AWARENESS, () => {}), 15_000);
        }
        this.send(MSG_SYNC, (e) => syncProtocol.writeSyncStep1(e, this.doc));
        resolve();
      });
      this.ws.once("error", reject);
    });
    this.ws.on("message", (data: Buffer) => this.receive(new Uint8Array(data)));
    this.ws.on("close", (code, reason) => {
      this.failure ??= `socket closed (${code} ${reason.toString()})`;
    });
    this.doc.on("update", (update: Uint8Array, origin: unknown) => {
      if (origin !== this) this.send(MSG_SYNC, (e) => syncProtocol.writeUpdate(e, update));
    });
  }

  get buffered(): number {
    return this.ws.bufferedAmount;
  }

  close(): void {
    clearInterval(this.keepAlive);
    this.failure = "closed";
    this.ws.close();
    this.doc.destroy();
  }

  private frame(type: number): encoding.Encoder {
    const encoder = encoding.createEncoder();
    encoding.writeUint8Array(encoder, this.prefix);
    encoding.writeVarUint(encoder, type);
    return encoder;
  }

  private send(type: number, write: (encoder: encoding.Encoder) => void): void {
    const encoder = this.frame(type);
    write(encoder);
    this.ws.send(encoding.toUint8Array(encoder));
  }

  private receive(frame: Uint8Array): void {
    const decoder = decoding.createDecoder(frame);
    decoder.pos = this.prefix.length; // our one document's name, for Hocuspocus
    let type = decoding.readVarUint(decoder);
    if (this.prefix.length > 0) {
      // SyncReply carries an ordinary sync message (Hocuspocus uses it where it has a reply
      // callback; over a socket it answers with Sync, but either way it is the same payload).
      if (type === HP_SYNC_REPLY) type = MSG_SYNC;
      else if (type === HP_CLOSE)
        this.failure = `closed by Hocuspocus: ${decoding.readVarString(decoder)}`;
      else if (type === HP_AUTH && decoding.readVarUint(decoder) === HP_AUTH_PERMISSION_DENIED)
        this.failure = `Hocuspocus denied access: ${decoding.readVarString(decoder)}`;
    }
    if (type !== MSG_SYNC) return; // awareness, auth, SyncStatus acks...: not measured
    const encoder = this.frame(MSG_SYNC);
    const empty = encoding.length(encoder);
    const kind = syncProtocol.readSyncMessage(decoder, encoder, this.doc, this);
    if (encoding.length(encoder) > empty) this.ws.send(encoding.toUint8Array(encoder));
    if (kind === syncProtocol.messageYjsSyncStep2) this.synced = true;
  }
}

async function until(check: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface ReplayResult {
  server: string;
  edits: number;
  seconds: number;
  updatesPerSecond: number;
  finalDocBytes: number;
  storedBytes: number | null;
}

async function replay(
  target: Target,
  trace: EditingTrace,
  watchers: number,
): Promise<ReplayResult> {
  const room = `trace-${Date.now()}`;
  const connect = (): SyncClient =>
    new SyncClient(target.url(room), target.hocuspocus ? room : undefined);
  const watching = Array.from({ length: watchers }, connect);
  const writer = connect();
  const clients = [writer, ...watching];
  /** Fails fast if the server dropped a client: it would never converge. */
  const alive = (): true => {
    const failed = clients.find((c) => c.failure !== null);
    if (failed) throw new Error(`${target.name}: a client failed: ${failed.failure}`);
    return true;
  };
  await Promise.all(clients.map((c) => c.opened));
  await until(() => alive() && clients.every((c) => c.synced), "the first sync", 30_000);
  const text = writer.doc.getText("text");
  const watched = watching.map((c) => c.doc.getText("text"));
  const end = trace.endContent;
  await target.profiler?.start();
  const started = performance.now();
  for (const [i, txn] of trace.txns.entries()) {
    writer.doc.transact(() => {
      for (const [pos, deleted, inserted] of txn.patches) {
        if (deleted > 0) text.delete(pos, deleted);
        if (inserted.length > 0) text.insert(pos, inserted);
      }
    });
    // Backpressure: let the socket drain rather than queue the whole trace in memory.
    if (i % 256 === 0) while (writer.buffered > 1 << 22) await new Promise((r) => setImmediate(r));
  }
  if (text.toString() !== end) throw new Error("the writer's replay does not match endContent");
  await until(
    () => alive() && watched.every((t) => t.length === end.length && t.toString() === end),
    "every watcher to hold endContent",
    600_000,
  );
  const seconds = (performance.now() - started) / 1000;
  if (target.profiler) await saveProfile(await target.profiler.stop(), target.name);
  const finalDocBytes = Y.encodeStateAsUpdate(writer.doc).byteLength;
  for (const c of clients) c.close();
  // Halo compacts by count and size; give its last write a moment to land.
  await new Promise((r) => setTimeout(r, 500));
  return {
    server: target.name,
    edits: trace.txns.length,
    seconds,
    updatesPerSecond: trace.txns.length / seconds,
    finalDocBytes,
    storedBytes: target.storedBytes ? await target.storedBytes(room) : null,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      trace: { type: "string", default: "automerge-paper" },
      watchers: { type: "string", default: "3" },
      servers: { type: "string", default: "halo,y-websocket-server" },
      edits: { type: "string" },
      profile: { type: "boolean", default: false },
    },
  });
  const full = loadTrace(values.trace);
  const edits = values.edits ? Number(values.edits) : full.txns.length;
  const trace = edits >= full.txns.length ? full : truncated(full, edits);
  const results: ReplayResult[] = [];
  for (const name of values.servers.split(",")) {
    const target = await startTarget(name, values.profile);
    try {
      results.push(await replay(target, trace, Number(values.watchers)));
    } finally {
      await target.stop();
    }
  }
  const fastest = Math.min(...results.map((r) => r.seconds));
  console.log(
    `\ntrace ${values.trace}: ${trace.txns.length} transactions, ${values.watchers} watchers; ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, Node ${process.version}\n`,
  );
  console.log(
    "| server | time to all watchers equal | updates/s | vs fastest | final doc | stored (compacted) | stored / final |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    const stored = r.storedBytes === null ? "-" : `${(r.storedBytes / 1024).toFixed(1)} KiB`;
    const ratio = r.storedBytes === null ? "-" : `${(r.storedBytes / r.finalDocBytes).toFixed(2)}x`;
    console.log(
      `| ${r.server} | ${r.seconds.toFixed(2)} s | ${Math.round(r.updatesPerSecond).toLocaleString("en-US")} | ${(r.seconds / fastest).toFixed(2)}x | ${(r.finalDocBytes / 1024).toFixed(1)} KiB | ${stored} | ${ratio} |`,
    );
  }
}

/** Writes the profile for DevTools (bench/results/) and prints where the time went. */
async function saveProfile(profile: CpuProfile, server: string): Promise<void> {
  const dir = join(PROJECT_ROOT, "bench/results");
  await mkdir(dir, { recursive: true });
  const file = join(
    dir,
    `trace-${server}-${new Date().toISOString().replace(/[:.]/g, "-")}.cpuprofile`,
  );
  await writeFile(file, JSON.stringify(profile));
  console.log(`\n${server}: CPU profile of the replay written to ${file}\n`);
  console.log(formatSummary(summarize(profile)));
}

/** The first `edits` transactions, with the text they produce as endContent. */
function truncated(trace: EditingTrace, edits: number): EditingTrace {
  const txns = trace.txns.slice(0, edits);
  let text = trace.startContent;
  for (const txn of txns)
    for (const [pos, deleted, inserted] of txn.patches)
      text = text.slice(0, pos) + inserted + text.slice(pos + deleted);
  return { startContent: trace.startContent, endContent: text, txns };
}

await main();
