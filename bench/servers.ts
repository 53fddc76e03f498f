// Start/stop helpers for the servers the fanout benchmark compares, plus a
// /proc-based sampler of each server's process tree (RSS and CPU time).

import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_readConfig } from "wrangler";
import type { Framing } from "./load-generator";

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Linux USER_HZ; /proc/<pid>/stat reports CPU time in these ticks. */
const CLK_TCK = 100;
const SAMPLE_INTERVAL_MS = 250;
const LOG_TAIL_LINES = 40;

export interface ServerHandle {
  readonly name: string;
  readonly pid: number;
  /** How the load generator must frame messages for this server. */
  readonly framing: Framing;
  url(room: string): string;
  stop(): Promise<void>;
  /** Max over samples of the summed VmRSS of the whole process tree. */
  peakRssBytes(): number;
  /**
   * Max over samples of the summed RSS of the processes that actually serve
   * traffic (workerd for Halo; the whole tree for single-process servers), so
   * the wrangler/npx toolchain's own memory can be told apart.
   */
  peakCoreRssBytes(): number;
  /** Per-process-name peak RSS, for the JSON report. */
  peakRssByName(): Record<string, number>;
  /** Tree CPU seconds between beginWindow() and endWindow() (or now). */
  cpuSeconds(): number;
  /** The same window's CPU seconds split by process name (is wrangler's Node busy?). */
  cpuSecondsByName(): Record<string, number>;
  beginWindow(): void;
  endWindow(): void;
  /** Last lines the server printed, for error reports. */
  logTail(): string;
}

interface ProcSample {
  pid: number;
  name: string;
  rssBytes: number;
  cpuTicks: number;
}

/** Reads pid -> ppid for every process; the tree changes (wrangler spawns workerd late). */
function readParentMap(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat === null) continue;
    const list = children.get(stat.ppid);
    if (list === undefined) children.set(stat.ppid, [pid]);
    else list.push(pid);
  }
  return children;
}

interface StatFields {
  ppid: number;
  name: string;
  cpuTicks: number;
}

function readStat(pid: number): StatFields | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null; // the process exited between readdir and read
  }
  // comm may contain spaces and parentheses, so split after the last ')'.
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < 0) return null;
  const name = text.slice(open + 1, close);
  const rest = text.slice(close + 2).split(" ");
  // rest[0] is field 3 (state); utime..cstime are fields 14..17.
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  // cutime/cstime keep the sum continuous if a descendant exits and is reaped
  // (its ticks move to the parent's cutime/cstime).
  const cutime = Number(rest[13]);
  const cstime = Number(rest[14]);
  return { ppid, name, cpuTicks: utime + stime + cutime + cstime };
}

function readRssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match?.[1] !== undefined ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function sampleTree(rootPid: number): ProcSample[] {
  const children = readParentMap();
  const out: ProcSample[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    const stat = readStat(pid);
    if (stat === null) continue;
    out.push({ pid, name: stat.name, rssBytes: readRssBytes(pid), cpuTicks: stat.cpuTicks });
    for (const child of children.get(pid) ?? []) queue.push(child);
  }
  return out;
}

/** Samples a process tree every 250 ms; keeps peaks and CPU-window marks. */
class TreeSampler {
  private timer: NodeJS.Timeout | null = null;
  private peakTree = 0;
  private peakCore = 0;
  private readonly peakByName = new Map<string, number>();
  private lastTicks = 0;
  private lastTicksByName = new Map<string, number>();
  private windowStartTicks: number | null = null;
  private windowEndTicks: number | null = null;
  private windowStartByName = new Map<string, number>();
  private windowEndByName: Map<string, number> | null = null;
  /** Every pid ever seen in the tree, so stop() can reap stragglers by id. */
  readonly seenPids = new Set<number>();

  constructor(
    private readonly rootPid: number,
    private readonly isCore: (name: string) => boolean,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stopSampling(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  sample(): number {
    const procs = sampleTree(this.rootPid);
    if (procs.length === 0) return this.lastTicks;
    let tree = 0;
    let core = 0;
    let ticks = 0;
    const byName = new Map<string, number>();
    const ticksByName = new Map<string, number>();
    for (const p of procs) {
      this.seenPids.add(p.pid);
      tree += p.rssBytes;
      if (this.isCore(p.name)) core += p.rssBytes;
      ticks += p.cpuTicks;
      byName.set(p.name, (byName.get(p.name) ?? 0) + p.rssBytes);
      ticksByName.set(p.name, (ticksByName.get(p.name) ?? 0) + p.cpuTicks);
    }
    this.lastTicksByName = ticksByName;
    this.peakTree = Math.max(this.peakTree, tree);
    this.peakCore = Math.max(this.peakCore, core);
    for (const [name, rss] of byName) {
      this.peakByName.set(name, Math.max(this.peakByName.get(name) ?? 0, rss));
    }
    this.lastTicks = ticks;
    return ticks;
  }

  beginWindow(): void {
    // Sample synchronously so the window edges are exact, not 250 ms-aligned.
    this.windowStartTicks = this.sample();
    this.windowStartByName = this.lastTicksByName;
    this.windowEndTicks = null;
    this.windowEndByName = null;
  }

  endWindow(): void {
    this.windowEndTicks = this.sample();
    this.windowEndByName = this.lastTicksByName;
  }

  cpuSecondsByName(): Record<string, number> {
    if (this.windowEndByName === null) this.sample();
    const end = this.windowEndByName ?? this.lastTicksByName;
    const out: Record<string, number> = {};
    for (const [name, ticks] of end) {
      out[name] = Math.max(0, ticks - (this.windowStartByName.get(name) ?? 0)) / CLK_TCK;
    }
    return out;
  }

  cpuSeconds(): number {
    const start = this.windowStartTicks ?? 0;
    const end = this.windowEndTicks ?? this.sample();
    return Math.max(0, end - start) / CLK_TCK;
  }

  peakRss(): number {
    return this.peakTree;
  }

  peakCoreRss(): number {
    return this.peakCore;
  }

  peakRssByName(): Record<string, number> {
    return Object.fromEntries(this.peakByName);
  }
}

/** Asks the OS for a free TCP port on 127.0.0.1. */
export async function getFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("could not determine a free port"));
        return;
      }
      const port = addr.port;
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Children still running when this process exits are killed by group id. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => {
    for (const pgid of liveGroups) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

interface SpawnSpec {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  readyUrl: string;
  readyTimeoutMs: number;
  url: (room: string) => string;
  /** Default "y-websocket". */
  framing?: Framing;
  isCore: (procName: string) => boolean;
  cleanup?: () => Promise<void>;
}

async function spawnServer(spec: SpawnSpec): Promise<ServerHandle> {
  installExitHook();
  const child: ChildProcess = spawn(spec.command, spec.args, {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env },
    // Own process group, so stop() can signal wrangler's whole tree at once.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${spec.name}: spawn failed`);
  liveGroups.add(pid);

  const tail: string[] = [];
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line.trim() === "") continue;
      tail.push(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
    }
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);

  let exited = false;
  const exitPromise = new Promise<void>((r) => {
    child.once("exit", () => {
      exited = true;
      r();
    });
  });

  const sampler = new TreeSampler(pid, spec.isCore);
  sampler.start();

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    sampler.stopSampling();
    sampler.sample(); // pick up any late descendants before signalling
    const signalGroup = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-pid, sig);
      } catch {
        // group already gone
      }
    };
    signalGroup("SIGTERM");
    const deadline = Date.now() + 5000;
    const anyAlive = (): boolean => [...sampler.seenPids].some(isAlive);
    while (Date.now() < deadline && (!exited || anyAlive())) await sleep(50);
    if (!exited || anyAlive()) {
      signalGroup("SIGKILL");
      // Descendants that moved to another process group are killed by pid.
      for (const p of sampler.seenPids) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await Promise.race([exitPromise, sleep(2000)]);
    }
    liveGroups.delete(pid);
    await spec.cleanup?.();
  };

  try {
    await waitForHttp(spec.readyUrl, spec.readyTimeoutMs, () => exited);
  } catch (err) {
    await stop();
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`${spec.name} did not become ready: ${reason}\n${tail.join("\n")}`);
  }

  return {
    name: spec.name,
    pid,
    framing: spec.framing ?? "y-websocket",
    url: spec.url,
    stop,
    peakRssBytes: () => sampler.peakRss(),
    peakCoreRssBytes: () => sampler.peakCoreRss(),
    peakRssByName: () => sampler.peakRssByName(),
    cpuSeconds: () => sampler.cpuSeconds(),
    cpuSecondsByName: () => sampler.cpuSecondsByName(),
    beginWindow: () => sampler.beginWindow(),
    endWindow: () => sampler.endWindow(),
    logTail: () => tail.join("\n"),
  };
}

async function waitForHttp(
  url: string,
  timeoutMs: number,
  hasExited: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "no response";
  while (Date.now() < deadline) {
    if (hasExited()) throw new Error("process exited during startup");
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      lastError = `HTTP ${res.status}`;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${url} (${lastError})`);
}

/** The reference y-websocket server (Node, in-memory docs, no persistence). */
export function startYWebsocketServer(port: number): Promise<ServerHandle> {
  return spawnServer({
    name: "y-websocket-server",
    command: process.execPath,
    args: [join(PROJECT_ROOT, "node_modules/@y/websocket-server/src/server.js")],
    env: { HOST: "127.0.0.1", PORT: String(port) },
    cwd: PROJECT_ROOT,
    readyUrl: `http://127.0.0.1:${port}/`,
    readyTimeoutMs: 20_000,
    url: (room) => `ws://127.0.0.1:${port}/${room}`,
    isCore: () => true,
  });
}

/**
 * Halo's configuration for benchmarks: one region of four shards (no replication, as the peers
 * are one process each), anonymous clients, and whatever the caller changes on top.
 */
export function haloBenchConfig(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    environment: "development",
    allowRegionOverride: true,
    defaultRegion: "wnam",
    shards: { wnam: 4 },
    auth: { anonymous: true },
    ...overrides,
  });
}

export interface HaloOptions {
  /** Extra `--var` bindings (HALO_CONFIG as JSON replaces wrangler.toml's configuration). */
  vars?: Record<string, string>;
  /** Opens workerd's V8 inspector on this port (bench/cpu-profile.ts takes profiles through it). */
  inspectorPort?: number;
}

/** Halo under `wrangler dev`, with a throwaway persistence dir per start. */
export async function startHalo(port: number, options: HaloOptions = {}): Promise<ServerHandle> {
  const persistDir = await mkdtemp(join(tmpdir(), "halo-bench-"));
  const varArgs = Object.entries(options.vars ?? {}).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const inspectorArgs =
    options.inspectorPort === undefined ? [] : ["--inspector-port", String(options.inspectorPort)];
  return spawnServer({
    name: "halo",
    command: join(PROJECT_ROOT, "node_modules/.bin/wrangler"),
    args: [
      "dev",
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--persist-to",
      persistDir,
      "--log-level",
      "warn",
      ...inspectorArgs,
      ...varArgs,
    ],
    env: { WRANGLER_SEND_METRICS: "false" },
    cwd: PROJECT_ROOT,
    readyUrl: `http://127.0.0.1:${port}/healthz`,
    readyTimeoutMs: 60_000,
    url: (room) => `ws://127.0.0.1:${port}/v1/rooms/${room}`,
    // The serving runtime is workerd; wrangler's node and esbuild are dev tooling that a
    // deployed Worker would not carry.
    isCore: (procName) => procName === "workerd",
    cleanup: () => rm(persistDir, { recursive: true, force: true }),
  });
}

/** wrangler.toml's HALO_CONFIG (the local development configuration: three regions), as JSON. */
export function devConfig(): string {
  const config = unstable_readConfig({ config: join(PROJECT_ROOT, "wrangler.toml") });
  return JSON.stringify(config.vars.HALO_CONFIG);
}

/** The deployable bundle (`wrangler deploy --dry-run`), built once per benchmark process. */
let bundleDir: Promise<string> | null = null;
function buildBundle(): Promise<string> {
  bundleDir ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "halo-bundle-"));
    await new Promise<void>((resolveBuild, reject) => {
      const build = spawn(
        join(PROJECT_ROOT, "node_modules/.bin/wrangler"),
        ["deploy", "--dry-run", "--outdir", dir],
        {
          cwd: PROJECT_ROOT,
          env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
          stdio: "ignore",
        },
      );
      build.once("error", reject);
      build.once("exit", (code) =>
        code === 0 ? resolveBuild() : reject(new Error(`wrangler deploy --dry-run exited ${code}`)),
      );
    });
    return dir;
  })();
  return bundleDir;
}

/**
 * Halo in workerd through Miniflare's API (bench/miniflare-host.ts): the deployable bundle with
 * SQLite Durable Objects, without `wrangler dev`'s proxy (see that file). `vars.HALO_CONFIG`
 * replaces wrangler.toml's configuration, as with `startHalo`.
 */
export async function startHaloMiniflare(
  port: number,
  options: HaloOptions = {},
): Promise<ServerHandle> {
  const bundle = await buildBundle();
  const persistDir = await mkdtemp(join(tmpdir(), "halo-bench-"));
  const { HALO_CONFIG, ...vars } = options.vars ?? {};
  const env =
    options.inspectorPort === undefined
      ? vars
      : { ...vars, HALO_INSPECTOR_PORT: String(options.inspectorPort) };
  return spawnServer({
    name: "halo",
    command: process.execPath,
    args: [
      "--import",
      "tsx",
      join(PROJECT_ROOT, "bench/miniflare-host.ts"),
      String(port),
      bundle,
      persistDir,
      ...(HALO_CONFIG ? [HALO_CONFIG] : []),
    ],
    env,
    cwd: PROJECT_ROOT,
    readyUrl: `http://127.0.0.1:${port}/healthz`,
    readyTimeoutMs: 60_000,
    url: (room) => `ws://127.0.0.1:${port}/v1/rooms/${room}`,
    isCore: (procName) => procName === "workerd",
    cleanup: () => rm(persistDir, { recursive: true, force: true }),
  });
}

/**
 * The floor inside workerd (bench/workerd-relay/worker.js): one Durable Object per room that
 * relays every frame to every socket, through the same Miniflare host as Halo. Compared with
 * `ws-relay`, it shows what the runtime's socket path costs; compared with Halo, what Halo adds.
 */
export async function startWorkerdRelay(port: number): Promise<ServerHandle> {
  const persistDir = await mkdtemp(join(tmpdir(), "workerd-relay-"));
  return spawnServer({
    name: "workerd-relay",
    command: process.execPath,
    args: [
      "--import",
      "tsx",
      join(PROJECT_ROOT, "bench/miniflare-host.ts"),
      String(port),
      join(PROJECT_ROOT, "bench/workerd-relay"),
      persistDir,
    ],
    env: { HALO_BENCH_DURABLE_OBJECTS: JSON.stringify({ ROOM: "RelayRoom" }) },
    cwd: PROJECT_ROOT,
    readyUrl: `http://127.0.0.1:${port}/healthz`,
    readyTimeoutMs: 60_000,
    url: (room) => `ws://127.0.0.1:${port}/${room}`,
    isCore: (procName) => procName === "workerd",
    cleanup: () => rm(persistDir, { recursive: true, force: true }),
  });
}

// Plain JavaScript run with `node -e`, so the floor baseline carries no tsx
// loader (or its esbuild helper) in its RSS and CPU numbers.
const WS_RELAY_SOURCE = `
import { createServer } from "node:http";
import { WebSocketServer } from "ws";
const port = Number(process.env.PORT);
const rooms = new Map();
const http = createServer((_req, res) => { res.writeHead(200); res.end("ok"); });
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  const key = req.url ?? "/";
  let room = rooms.get(key);
  if (room === undefined) { room = new Set(); rooms.set(key, room); }
  room.add(ws);
  ws.on("message", (data, isBinary) => {
    for (const peer of room) if (peer.readyState === 1) peer.send(data, { binary: isBinary });
  });
  ws.on("close", () => { room.delete(ws); if (room.size === 0) rooms.delete(key); });
  ws.on("error", () => {});
});
http.listen(port, "127.0.0.1");
`;

/**
 * Floor baseline: relays every frame to every socket on the same path
 * (sender included), with no Yjs and no greeting on connect.
 */
export function startWsRelay(port: number): Promise<ServerHandle> {
  return spawnServer({
    name: "ws-relay",
    command: process.execPath,
    args: ["--input-type=module", "-e", WS_RELAY_SOURCE],
    env: { PORT: String(port) },
    // Bare "ws" resolves from the cwd for `node -e` ES modules.
    cwd: PROJECT_ROOT,
    readyUrl: `http://127.0.0.1:${port}/`,
    readyTimeoutMs: 20_000,
    url: (room) => `ws://127.0.0.1:${port}/${room}`,
    isCore: () => true,
  });
}

// Plain JavaScript, like the relay: Hocuspocus v4's Server only listens once
// listen() is called. In memory (no extensions, so no persistence hooks); no
// signal handlers, so SIGTERM ends it at once instead of unloading documents.
// GET / answers 200 "Welcome to Hocuspocus!".
const HOCUSPOCUS_SOURCE = `
import { Server } from "@hocuspocus/server";
const server = new Server({
  port: Number(process.env.PORT),
  address: "127.0.0.1",
  quiet: true,
  stopOnSignals: false,
});
await server.listen();
`;

/**
 * @hocuspocus/server with its defaults. The document name travels in every
 * frame (see Framing), so all rooms share one socket URL; the path only makes
 * logs readable.
 */
export function startHocuspocus(port: number): Promise<ServerHandle> {
  return spawnServer({
    name: "hocuspocus",
    command: process.execPath,
    args: ["--input-type=module", "-e", HOCUSPOCUS_SOURCE],
    env: { PORT: String(port) },
    // Bare "@hocuspocus/server" resolves from the cwd for `node -e` ES modules.
    cwd: PROJECT_ROOT,
    readyUrl: `http://127.0.0.1:${port}/`,
    readyTimeoutMs: 20_000,
    url: () => `ws://127.0.0.1:${port}/`,
    framing: "hocuspocus",
    isCore: () => true,
  });
}
