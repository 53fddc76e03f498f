// Real document workload (issue 8): one client types a real editing trace into a room while
// others watch, on Halo and on the peer servers, one after another in the same run.
//
//   npx tsx bench/trace-replay.ts [--trace automerge-paper] [--watchers 3]
//                                 [--servers halo,y-websocket-server] [--edits N]
//
// Reports, per server: the time until every watcher's text equals the trace's endContent,
// updates per second (one Yjs update per transaction of the trace, sent as fast as the socket
// drains), and for Halo the bytes stored after compaction against the final document's size.
// Hocuspocus is not in this replay yet: with its framing (bench/load-generator.ts) the watchers
// did not converge in a first try, which is still to be understood.
// Halo runs with one region (no replication) and its per-connection message limit raised:
// the replay is a throughput test, not a typist.

import { rm } from "node:fs/promises";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import WebSocket from "ws";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import { type EditingTrace, loadTrace } from "../test/support/traces";
import { startWranglerDev } from "../test/support/wrangler-dev";
import { getFreePort, startYWebsocketServer } from "./servers";

const ADMIN_TOKEN = "bench-admin-token-not-for-production";

/** One region, no replication, and a message limit no replay reaches (see the header). */
const HALO_BENCH_CONFIG = JSON.stringify({
  environment: "development",
  allowRegionOverride: true,
  defaultRegion: "wnam",
  shards: { wnam: 4 },
  auth: { anonymous: true },
  limits: { messagesPerSecond: 1_000_000, messageBurst: 1_000_000 },
});

interface Target {
  name: string;
  url(room: string): string;
  /** Bytes stored for the room after compaction, where the server can say. */
  storedBytes?(room: string): Promise<number | null>;
  stop(): Promise<void>;
}

async function startTarget(name: string): Promise<Target> {
  if (name === "halo") {
    const server = await startWranglerDev(undefined, {
      HALO_CONFIG: HALO_BENCH_CONFIG,
      HALO_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    return {
      name,
      url: (room) => `${server.roomsUrl}/${room}`,
      storedBytes: async (room) => {
        const response = await fetch(`${server.httpUrl}/v1/admin/rooms/${room}?region=wnam`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        if (!response.ok) return null;
        const body = (await response.json()) as {
          storage?: { snapshotBytes: number; logBytes: number };
        };
        return body.storage ? body.storage.snapshotBytes + body.storage.logBytes : null;
      },
      stop: async () => {
        await server.stop();
        await rm(server.persistDir, { recursive: true, force: true });
      },
    };
  }
  if (name === "y-websocket-server") {
    const handle = await startYWebsocketServer(await getFreePort());
    return { name, url: (room) => handle.url(room), stop: () => handle.stop() };
  }
  throw new Error(`unknown server ${name} (halo, y-websocket-server)`);
}

/** A bare y-websocket-protocol client: a Y.Doc synced over one socket. */
class SyncClient {
  readonly doc = new Y.Doc();
  private readonly ws: WebSocket;
  readonly opened: Promise<void>;
  synced = false;

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws.binaryType = "nodebuffer";
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => {
        this.send((e) => syncProtocol.writeSyncStep1(e, this.doc));
        resolve();
      });
      this.ws.once("error", reject);
    });
    this.ws.on("message", (data: Buffer) => this.receive(new Uint8Array(data)));
    this.doc.on("update", (update: Uint8Array, origin: unknown) => {
      if (origin !== this) this.send((e) => syncProtocol.writeUpdate(e, update));
    });
  }

  get buffered(): number {
    return this.ws.bufferedAmount;
  }

  close(): void {
    this.ws.close();
    this.doc.destroy();
  }

  private send(write: (encoder: encoding.Encoder) => void): void {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 0); // sync
    write(encoder);
    this.ws.send(encoding.toUint8Array(encoder));
  }

  private receive(frame: Uint8Array): void {
    const decoder = decoding.createDecoder(frame);
    if (decoding.readVarUint(decoder) !== 0) return; // awareness and the rest: not measured
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 0);
    const kind = syncProtocol.readSyncMessage(decoder, encoder, this.doc, this);
    if (encoding.length(encoder) > 1) this.ws.send(encoding.toUint8Array(encoder));
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
  const watching = Array.from({ length: watchers }, () => new SyncClient(target.url(room)));
  const writer = new SyncClient(target.url(room));
  await Promise.all([writer, ...watching].map((c) => c.opened));
  await until(() => [writer, ...watching].every((c) => c.synced), "the first sync", 30_000);
  const text = writer.doc.getText("text");
  const watched = watching.map((c) => c.doc.getText("text"));
  const end = trace.endContent;
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
    () => watched.every((t) => t.length === end.length && t.toString() === end),
    "every watcher to hold endContent",
    600_000,
  );
  const seconds = (performance.now() - started) / 1000;
  const finalDocBytes = Y.encodeStateAsUpdate(writer.doc).byteLength;
  for (const c of [writer, ...watching]) c.close();
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
    },
  });
  const full = loadTrace(values.trace);
  const edits = values.edits ? Number(values.edits) : full.txns.length;
  const trace = edits >= full.txns.length ? full : truncated(full, edits);
  const results: ReplayResult[] = [];
  for (const name of values.servers.split(",")) {
    const target = await startTarget(name);
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
