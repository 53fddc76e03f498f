// Time from a client's join until every other member of the room sees it: Halo under
// `wrangler dev` beside the reference `@y/websocket-server`, interleaved rounds, one run.
// A join is what every stock client sees: the newcomer's awareness entry arriving. For Halo
// the member.join event on the extension channel is timed too.
//
//   npx tsx bench/presence-latency.ts [--watchers 20] [--rounds 15]

import { cpus } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import WebSocket from "ws";
import { getFreePort, type ServerHandle, startHalo, startYWebsocketServer } from "./servers";

const MESSAGE_AWARENESS = 1;
const MESSAGE_HALO = 100;

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolveOpen, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolveOpen(ws));
    ws.once("error", reject);
  });
}

/** An awareness frame announcing `clientId` with a small state. */
function awarenessFrame(clientId: number): Uint8Array {
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, 1);
  encoding.writeVarUint(inner, clientId);
  encoding.writeVarUint(inner, 1);
  encoding.writeVarString(inner, JSON.stringify({ user: { name: `joiner-${clientId}` } }));
  const outer = encoding.createEncoder();
  encoding.writeVarUint(outer, MESSAGE_AWARENESS);
  encoding.writeVarUint8Array(outer, encoding.toUint8Array(inner));
  return encoding.toUint8Array(outer);
}

/** Resolves with the time `clientId` shows up present in an awareness frame on `ws`. */
function seenBy(ws: WebSocket, clientId: number): Promise<number> {
  return new Promise((resolveSeen) => {
    const onMessage = (data: Buffer) => {
      const decoder = decoding.createDecoder(new Uint8Array(data));
      if (decoding.readVarUint(decoder) !== MESSAGE_AWARENESS) return;
      const inner = decoding.createDecoder(decoding.readVarUint8Array(decoder));
      const count = decoding.readVarUint(inner);
      for (let i = 0; i < count; i++) {
        const id = decoding.readVarUint(inner);
        decoding.readVarUint(inner);
        const state = decoding.readVarString(inner);
        if (id === clientId && state !== "null") {
          ws.off("message", onMessage);
          resolveSeen(performance.now());
          return;
        }
      }
    };
    ws.on("message", onMessage);
  });
}

/** Resolves with the time a member.join for `clientId` arrives on Halo's extension channel. */
function joinEventOn(ws: WebSocket, clientId: number): Promise<number> {
  return new Promise((resolveJoin) => {
    const onMessage = (data: Buffer) => {
      const decoder = decoding.createDecoder(new Uint8Array(data));
      if (decoding.readVarUint(decoder) !== MESSAGE_HALO) return;
      const message = JSON.parse(decoding.readVarString(decoder)) as {
        events?: Array<{ type: string; member?: { clientId: number } }>;
      };
      if (
        message.events?.some((e) => e.type === "member.join" && e.member?.clientId === clientId)
      ) {
        ws.off("message", onMessage);
        resolveJoin(performance.now());
      }
    };
    ws.on("message", onMessage);
  });
}

interface RoundResult {
  allSeenMs: number;
  joinEventMs: number | null;
}

async function round(
  server: ServerHandle,
  room: string,
  watchers: number,
  clientId: number,
  halo: boolean,
): Promise<RoundResult> {
  const sockets = await Promise.all(Array.from({ length: watchers }, () => open(server.url(room))));
  const subscriber = halo ? await open(`${server.url(room)}?presence=events`) : null;
  await new Promise((r) => setTimeout(r, 200)); // connect handshakes settle
  const joiner = await open(server.url(room));
  const seen = sockets.map((ws) => seenBy(ws, clientId));
  const joined = subscriber ? joinEventOn(subscriber, clientId) : null;
  const start = performance.now();
  joiner.send(awarenessFrame(clientId));
  const times = await Promise.all(seen);
  const joinAt = joined ? await joined : null;
  for (const ws of [...sockets, joiner, ...(subscriber ? [subscriber] : [])]) ws.terminate();
  return {
    allSeenMs: Math.max(...times) - start,
    joinEventMs: joinAt === null ? null : joinAt - start,
  };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

async function main(): Promise<void> {
  const watchers = option("watchers", 20);
  const rounds = option("rounds", 15);
  const halo = await startHalo(await getFreePort());
  const reference = await startYWebsocketServer(await getFreePort());
  const results = { halo: [] as RoundResult[], reference: [] as RoundResult[] };
  try {
    for (let r = 0; r < rounds + 1; r++) {
      // Round 0 warms both servers up (Halo compiles its room core on first use).
      const h = await round(halo, `lat-${r}`, watchers, 1_000 + r, true);
      const y = await round(reference, `lat-${r}`, watchers, 1_000 + r, false);
      if (r > 0) {
        results.halo.push(h);
        results.reference.push(y);
      }
    }
  } finally {
    await halo.stop();
    await reference.stop();
  }
  const h = results.halo.map((x) => x.allSeenMs);
  const y = results.reference.map((x) => x.allSeenMs);
  const events = results.halo.map((x) => x.joinEventMs ?? Number.NaN);
  const lines = [
    `### Join until every member sees it (${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)})`,
    "",
    `${watchers} members watching, ${rounds} joins per server after one warm-up, interleaved; local sockets.`,
    "",
    "| server | p50 ms | p95 ms | max ms |",
    "|---|---:|---:|---:|",
    `| Halo (wrangler dev), awareness at every member | ${quantile(h, 0.5).toFixed(2)} | ${quantile(h, 0.95).toFixed(2)} | ${Math.max(...h).toFixed(2)} |`,
    `| Halo, member.join event at a subscriber | ${quantile(events, 0.5).toFixed(2)} | ${quantile(events, 0.95).toFixed(2)} | ${Math.max(...events).toFixed(2)} |`,
    `| @y/websocket-server, awareness at every member | ${quantile(y, 0.5).toFixed(2)} | ${quantile(y, 0.95).toFixed(2)} | ${Math.max(...y).toFixed(2)} |`,
    "",
    `Halo / reference, p50: ${(quantile(h, 0.5) / quantile(y, 0.5)).toFixed(2)}x; p95: ${(quantile(h, 0.95) / quantile(y, 0.95)).toFixed(2)}x.`,
  ];
  console.log(lines.join("\n"));
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
