// Live shard resizes under load: Halo under Miniflare with one region, R rooms each holding a
// stock y-websocket writer and an SDK client (also writing, and in presence), then a sequence of
// resizes (POST /v1/admin/regions/wnam/shards). Per resize: rooms moved (close 4100) against jump
// hash's ideal, document bytes moved against all stored bytes, time until every client is back
// and every server document holds every edit, presence flaps the SDK clients saw, edits lost.
//
//   npx tsx bench/rebalance.ts [--rooms 200] [--sizes 4,5,3,4] [--edit-ms 200] [--doc-bytes 1000]
//                              [--timeout 30]
//
// --sizes: the first is the starting count, each next one a resize. Writers type one edit every
// --edit-ms from 500 ms before each POST until every moved client is back. Prints a Markdown
// table and writes it to bench/results/rebalance.md.

import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { connect, type Room, type WebSocketConstructor } from "../src/client/index";
import { CloseCode } from "../src/protocol/close-codes";
import { hash64 } from "../src/routing/hash";
import { shardIndexFor } from "../src/routing/jump-hash";
import { makeRoomNames, splitmix32, uniform } from "./prng";
import { getFreePort, haloBenchConfig, PROJECT_ROOT, startHaloMiniflare } from "./servers";

type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

const { values } = parseArgs({
  options: {
    rooms: { type: "string", default: "200" },
    sizes: { type: "string", default: "4,5,3,4" },
    "edit-ms": { type: "string", default: "200" },
    "doc-bytes": { type: "string", default: "1000" },
    timeout: { type: "string", default: "30" },
  },
});
const ROOMS = Number(values.rooms);
const SIZES = values.sizes.split(",").map(Number);
const EDIT_MS = Number(values["edit-ms"]);
const DOC_BYTES = Number(values["doc-bytes"]);
const TIMEOUT_MS = Number(values.timeout) * 1000;
if (![ROOMS, EDIT_MS, DOC_BYTES, TIMEOUT_MS, ...SIZES].every((n) => Number.isInteger(n) && n > 0))
  throw new Error("--rooms, --sizes, --edit-ms, --doc-bytes and --timeout take positive integers");
if (SIZES.length < 2) throw new Error("--sizes needs a starting count and at least one resize");

const REGION = "wnam";
const ADMIN_TOKEN = "rebalance-bench-admin-token"; // Halo refuses admin tokens under 16 chars
process.setMaxListeners(ROOMS + 20); // each y-websocket provider adds a process 'exit' listener
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (line: string): void => void process.stderr.write(`[rebalance] ${line}\n`);

interface Client {
  name: string;
  ydoc: Y.Doc;
  provider: WebsocketProvider;
  sdkDoc: Y.Doc;
  sdk: Room;
  /** What each writer typed: the only writer of its own text, so the order is known. */
  expected: { yws: string; sdk: string };
  /** Clients of this room closed with `moved` during the current resize (0..2). */
  movedCloses: number;
  otherCloses: string[];
  /** clientIds the SDK client has ever seen join: another join of one is a flap. */
  known: Set<number>;
  flaps: string[];
  statusEvents: string[];
  closed(who: string, code: number, reason: string): void;
}

const port = await getFreePort();
const base = `http://127.0.0.1:${port}`;
// REST budget raised: the bench reads every room's document and presence after each resize.
const config = haloBenchConfig({
  shards: { [REGION]: SIZES[0] },
  limits: { restRequestsPerSecond: 100_000, restBurst: 100_000 },
});
log(`starting Halo (miniflare), ${SIZES[0]} shards`);
const server = await startHaloMiniflare(port, {
  vars: { HALO_CONFIG: config, HALO_ADMIN_TOKEN: ADMIN_TOKEN },
});
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
const byName = new Map<string, Client>();
/** `ws`, telling each room the code and reason its SDK socket closed with. */
class SdkSocket extends WebSocket {
  constructor(url: string) {
    super(url);
    const room = byName.get(decodeURIComponent(new URL(url).pathname.split("/").at(-1) ?? ""));
    this.on("close", (code, reason) => room?.closed("sdk", code, reason.toString()));
  }
}
const sdkClient = connect({
  url: base,
  region: REGION,
  user: "sdk",
  WebSocket: SdkSocket as unknown as WebSocketConstructor,
});

let counting = false; // presence events count as flaps only inside a resize's window
const outsideFlaps: string[] = [];
const movedAt: number[] = []; // when each 4100 close arrived, in the current resize

function openRoom(name: string): Client {
  const ydoc = new Y.Doc();
  const provider = new WebsocketProvider(`ws://127.0.0.1:${port}/v1/rooms`, name, ydoc, {
    WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
    disableBc: true, // or the two docs of a room would sync without the server
    params: { region: REGION, user: "writer" },
  });
  const sdkDoc = new Y.Doc();
  const c: Client = {
    name,
    ydoc,
    provider,
    sdkDoc,
    sdk: null as unknown as Room, // opened below, once byName knows the room
    expected: { yws: "", sdk: "" },
    movedCloses: 0,
    otherCloses: [],
    known: new Set(),
    flaps: [],
    statusEvents: [],
    closed(who, code, reason) {
      if (code === CloseCode.Moved) {
        c.movedCloses++;
        if (counting) movedAt.push(performance.now());
      } else c.otherCloses.push(`${name}: ${who} ${code} ${reason}`);
    },
  };
  byName.set(name, c);
  const sdk = sdkClient.room(name, { doc: sdkDoc, presence: { role: "sdk" } });
  c.sdk = sdk;
  provider.on("connection-close", (e) => c.closed("y-websocket", e?.code ?? 0, e?.reason ?? ""));
  const flap = (what: string): void => void (counting ? c.flaps : outsideFlaps).push(what);
  sdk.presence.on("join", (m) => {
    if (c.known.has(m.clientId)) flap(`${name}: ${m.userId}/${m.clientId} joined again`);
    c.known.add(m.clientId);
  });
  sdk.presence.on("leave", (m, reason) =>
    flap(`${name}: ${m.userId}/${m.clientId} left (${reason})`),
  );
  sdk.presence.on("status", (m) => {
    if (counting) c.statusEvents.push(`${name}: ${m.userId}/${m.clientId} ${m.status}`);
  });
  return c;
}

function type(c: Client, who: "yws" | "sdk", chunk: string): void {
  const text = (who === "yws" ? c.ydoc : c.sdkDoc).getText(who);
  text.insert(text.length, chunk);
  c.expected[who] += chunk;
}

/** Every writer types one edit per EDIT_MS, rooms spread over the period; returns the stopper. */
function startTyping(clients: Client[]): () => void {
  const timers: NodeJS.Timeout[] = [];
  let seq = 0;
  clients.forEach((c, i) => {
    const tick = (): void => {
      seq++;
      type(c, "yws", `<w${seq}>`);
      type(c, "sdk", `<s${seq}>`);
    };
    timers.push(
      setTimeout(() => timers.push(setInterval(tick, EDIT_MS)), (i * EDIT_MS) / clients.length),
    );
  });
  return () => {
    for (const t of timers) clearTimeout(t);
  };
}

const online = (c: Client): boolean =>
  c.provider.wsconnected && c.provider.synced && c.sdk.status === "connected" && c.sdk.synced;
/** Both clients hold both writers' every edit (each text has one writer, so equality is exact). */
const converged = (c: Client): boolean =>
  c.ydoc.getText("sdk").toString() === c.expected.sdk &&
  c.sdkDoc.getText("yws").toString() === c.expected.yws &&
  c.ydoc.getText("yws").toString() === c.expected.yws &&
  c.sdkDoc.getText("sdk").toString() === c.expected.sdk;

async function waitFor(check: () => boolean, what: string): Promise<boolean> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) {
      log(`timed out waiting for ${what}`);
      return false;
    }
    await sleep(20);
  }
  return true;
}

/** Runs `fn` over `items`, 16 at a time (enough to keep a local workerd busy). */
async function pool<T, U>(items: readonly T[], fn: (item: T) => Promise<U>): Promise<U[]> {
  const out: U[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return out;
}

type ServerDoc = Client["expected"] & { bytes: number };

async function serverDoc(room: string): Promise<ServerDoc> {
  const res = await fetch(`${base}/v1/rooms/${room}/document?region=${REGION}`);
  if (!res.ok) throw new Error(`GET document ${room}: ${res.status} ${await res.text()}`);
  const update = new Uint8Array(await res.arrayBuffer());
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  return {
    bytes: update.byteLength,
    yws: doc.getText("yws").toString(),
    sdk: doc.getText("sdk").toString(),
  };
}

/** Polls the server's documents until each matches what was typed; returns sizes and stragglers. */
async function checkServer(
  clients: Client[],
): Promise<{ sizes: Map<string, number>; lost: string[] }> {
  const sizes = new Map<string, number>();
  let left = clients;
  const deadline = Date.now() + TIMEOUT_MS;
  while (left.length > 0) {
    const docs = await pool(left, (c) => serverDoc(c.name));
    const still: Client[] = [];
    left.forEach((c, i) => {
      const d = docs[i] as ServerDoc;
      sizes.set(c.name, d.bytes);
      if (d.yws !== c.expected.yws || d.sdk !== c.expected.sdk) still.push(c);
    });
    if (still.length === 0 || Date.now() > deadline) {
      const lost = still.map((c) => {
        const d = docs[left.indexOf(c)] as ServerDoc;
        const miss = (want: string, got: string): string =>
          want === got ? "ok" : `${got.length}/${want.length} chars, ends "${got.slice(-12)}"`;
        return `${c.name}: yws ${miss(c.expected.yws, d.yws)}; sdk ${miss(c.expected.sdk, d.sdk)}`;
      });
      return { sizes, lost };
    }
    left = still;
    await sleep(100);
  }
  return { sizes, lost: [] };
}

/** Rooms whose REST presence is not exactly the room's two clients, present. */
async function presenceProblems(clients: Client[]): Promise<string[]> {
  const answers = await pool(clients, async (c) => {
    const res = await fetch(`${base}/v1/rooms/${c.name}/presence?region=${REGION}`);
    const body = (await res.json()) as { members?: Array<{ clientId: number; status: string }> };
    const ids = new Set([c.ydoc.clientID, c.sdk.presence.clientId]);
    const m = body.members ?? [];
    const ok = m.length === 2 && m.every((x) => ids.has(x.clientId) && x.status === "present");
    return ok ? null : `${c.name}: ${JSON.stringify(m.map((x) => [x.clientId, x.status]))}`;
  });
  return answers.filter((a): a is string => a !== null);
}

async function socketsByShard(): Promise<string> {
  const res = await fetch(`${base}/v1/admin/shards`, { headers: admin });
  const body = (await res.json()) as {
    shards: Array<{ region: string; index: number; sockets: number; loadedRooms: number }>;
  };
  return body.shards
    .filter((s) => s.region === REGION)
    .sort((a, b) => a.index - b.index)
    .map((s) => `${s.sockets}/${s.loadedRooms}`)
    .join(" ");
}

type ShardReport = { shard: number; handedAway?: number; pending?: number; error?: string };

const pct = (a: number, b: number): string => `${b > 0 ? ((100 * a) / b).toFixed(1) : "n/a"}%`;
const kb = (n: number): string => (n / 1024).toFixed(1);
const ms = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : "-");
const table: string[] = [];
const details: string[] = [];
try {
  const names = makeRoomNames(ROOMS, 0x4eba1);
  const clients: Client[] = [];
  for (let i = 0; i < names.length; i += 20) {
    clients.push(...names.slice(i, i + 20).map(openRoom));
    if (!(await waitFor(() => clients.every(online), `rooms ${i}.. to sync`)))
      throw new Error("rooms did not connect");
  }
  // Documents of varied size (0.5x to 1.5x --doc-bytes), so bytes moved is not just a room count.
  const rand = splitmix32(0xb17e5);
  for (const c of clients) {
    type(c, "yws", "x".repeat(Math.round(DOC_BYTES * (0.5 + uniform(rand)))));
    type(c, "sdk", `sdk of ${c.name};`);
  }
  if (!(await waitFor(() => clients.every(converged), "initial documents to converge")))
    throw new Error("initial documents did not converge");
  let { sizes, lost } = await checkServer(clients);
  if (lost.length > 0) throw new Error(`initial documents not stored: ${lost.join("; ")}`);
  log(`${clients.length} rooms ready, ${[...sizes.values()].reduce((a, b) => a + b, 0)} bytes`);

  for (let k = 1; k < SIZES.length; k++) {
    const from = SIZES[k - 1] as number;
    const to = SIZES[k] as number;
    const ideal = new Set(names.filter((n) => shardIndexFor(n, from) !== shardIndexFor(n, to)));
    // The simplest baseline: a room's shard as its hash modulo the count.
    const modulo = names.filter((n) => hash64(n).lo % from !== hash64(n).lo % to).length;
    for (const c of clients) {
      c.movedCloses = 0;
      c.otherCloses = [];
      c.flaps = [];
      c.statusEvents = [];
    }
    log(`resize ${from} -> ${to}: ${ideal.size} rooms should move`);
    const stopTyping = startTyping(clients);
    await sleep(500); // edits in flight when the sockets close
    movedAt.length = 0;
    counting = true;
    const t0 = performance.now();
    server.beginWindow();
    const res = await fetch(`${base}/v1/admin/regions/${REGION}/shards`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ shards: to }),
    });
    const postMs = performance.now() - t0;
    const reports = ((await res.json()) as { shards?: ShardReport[] }).shards ?? [];
    if (!res.ok) throw new Error(`resize to ${to}: HTTP ${res.status}`);
    // A room is back once both its clients were closed with `moved` and are connected and
    // synced again; its time is the last time it came back (a second close starts it over).
    const back = new Map<string, number>();
    let waiting: Client[] = [];
    await waitFor(() => {
      waiting = clients.filter((c) => ideal.has(c.name) || c.movedCloses > 0);
      for (const c of waiting)
        if (c.movedCloses < 2 || !online(c)) back.delete(c.name);
        else if (!back.has(c.name)) back.set(c.name, performance.now() - t0);
      return back.size === waiting.length;
    }, "moved clients to come back");
    const backMs = performance.now() - t0;
    stopTyping();
    await waitFor(() => clients.every((c) => online(c) && converged(c)), "clients to converge");
    const before = sizes;
    ({ sizes, lost } = await checkServer(clients));
    const settleMs = performance.now() - t0;
    server.endWindow();
    const cpu = (server.cpuSecondsByName().workerd ?? Number.NaN) / (settleMs / 1000);
    await sleep(1000); // late leaves and rejoins still count
    counting = false;

    const moved = clients.filter((c) => c.movedCloses > 0).map((c) => c.name);
    const bytes = (rooms: Iterable<string>): number =>
      [...rooms].reduce((a, n) => a + (before.get(n) ?? 0), 0);
    const times = [...back.values()].sort((a, b) => a - b);
    const flaps = clients.flatMap((c) => c.flaps);
    const statusEvents = clients.flatMap((c) => c.statusEvents);
    const presence = await presenceProblems(clients);
    const sum = (f: (r: ShardReport) => number | undefined): number =>
      reports.reduce((a, r) => a + (f(r) ?? 0), 0);
    table.push(
      `| ${from}→${to} | ${moved.length} | ${ideal.size} | ${((Math.abs(to - from) / Math.max(to, from)) * ROOMS).toFixed(1)} | ${modulo} (${(moved.length / Math.max(1, modulo)).toFixed(2)}x) | ${kb(bytes(moved))} (${kb(bytes(ideal))}) | ${pct(bytes(moved), bytes(names))} of ${kb(bytes(names))} | ${ms(postMs)} | ${sum((r) => r.handedAway)} / ${sum((r) => r.pending)} | ${ms(Math.min(...movedAt) - t0)}–${ms(Math.max(...movedAt) - t0)} | ${ms(times[times.length >> 1] ?? Number.NaN)} / ${ms(backMs)} | ${ms(settleMs)} | ${ms(cpu * 100)}% | ${flaps.length} | ${statusEvents.length} | ${lost.length} | ${presence.length} | ${await socketsByShard()} |`,
    );
    const found: Array<[string, string[]]> = [
      ["moved, not by jump hash", moved.filter((n) => !ideal.has(n))],
      ["not moved, though jump hash moves them", [...ideal].filter((n) => !moved.includes(n))],
      ["never back", waiting.filter((c) => !back.has(c.name)).map((c) => c.name)],
      ["shard errors", reports.filter((r) => r.error).map((r) => `${r.shard}: ${r.error}`)],
      ["presence flaps", flaps],
      ["member status events (not flaps)", statusEvents],
      ["edits lost", lost],
      ["presence wrong", presence],
      ["closes other than 4100", clients.flatMap((c) => c.otherCloses)],
      ["slowest back", [...back].sort((a, b) => b[1] - a[1]).map(([n, t]) => `${n} ${ms(t)} ms`)],
    ];
    for (const [what, list] of found)
      if (list.length > 0)
        details.push(`- ${from}→${to} ${what} (${list.length}): ${list.slice(0, 6).join("; ")}`);
    log(
      `  moved ${moved.length}/${ideal.size}, back ${ms(backMs)} ms, settled ${ms(settleMs)} ms, flaps ${flaps.length}, lost ${lost.length}`,
    );
  }
  for (const c of clients) c.provider.destroy();
  sdkClient.close();
} finally {
  await server.stop();
}

if (outsideFlaps.length > 0)
  details.push(`- presence flaps between resizes: ${outsideFlaps.join("; ")}`);
const markdown = [
  `# Shard resize under load — ${new Date().toISOString()}`,
  "",
  `Command: \`${["npx tsx bench/rebalance.ts", ...process.argv.slice(2)].join(" ")}\``,
  `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}.`,
  `Halo under Miniflare (bench/miniflare-host.ts), one region (${REGION}), ${ROOMS} rooms, each with a stock y-websocket writer and an SDK client (writing too, and in presence); one edit per writer every ${EDIT_MS} ms from 500 ms before the POST until every moved client is back; documents ${DOC_BYTES / 2}-${(DOC_BYTES * 3) / 2} bytes to start.`,
  "",
  "| resize | rooms moved (4100) | jump-hash ideal | \\|M−N\\|/max·R | mod-N would move (ratio) | KiB moved (ideal) | of stored KiB | POST ms | handed away / pending | 4100 closes at ms | back ms p50 / all | settled ms | workerd CPU | presence flaps | member status events | edits lost | presence wrong | sockets/rooms per shard after |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ...table,
  "",
  "Rooms moved: rooms whose clients were closed with 4100; mod-N: how many a `hash % count` placement (the simplest baseline) would move, and Halo's moved rooms as a ratio of it. KiB: each room's document as `GET /v1/rooms/:room/document` returns it before the resize. Times from the POST: back, until a moved room's two clients are connected and synced again (median over moved rooms / all); settled, until every client and every server document also holds every edit typed. workerd CPU: its CPU time over that window (100% = one core). Presence flaps: `leave` events, and `join`s of a clientId already seen, that SDK clients saw from the POST to 1 s after settling (goal 0); member status events (`present`/`reconnecting`) are counted apart. Edits lost: rooms whose server document still missed an edit after the timeout (goal 0). Presence wrong: rooms whose REST presence is not exactly their two clients, present. Sockets/rooms per shard: `GET /v1/admin/shards`, shard 0 first.",
  ...(details.length > 0 ? ["", "Details (at most 6 of each):", ...details] : []),
  "",
].join("\n");
process.stdout.write(markdown);
await mkdir(join(PROJECT_ROOT, "bench/results"), { recursive: true });
await writeFile(join(PROJECT_ROOT, "bench/results/rebalance.md"), markdown);
process.exit(0); // providers' and SDK timers must not keep the process alive
