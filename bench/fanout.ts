// Fan-out benchmark: Halo vs the reference y-websocket server vs Hocuspocus vs
// a dumb ws relay (the floor), over awareness and document workloads.
//
//   npx tsx bench/fanout.ts [--quick] [--servers halo,y-websocket-server,hocuspocus,ws-relay]
//                           [--runs N] [--duration S] [--warmup S] [--drain S] [--only TEXT]

import { mkdir, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type LoadResult, runLoad, type WorkloadKind } from "./load-generator";
import {
  devConfig,
  getFreePort,
  haloBenchConfig,
  PROJECT_ROOT,
  type ServerHandle,
  startHalo,
  startHaloMiniflare,
  startHocuspocus,
  startWorkerdRelay,
  startWsRelay,
  startYWebsocketServer,
} from "./servers";

export type ServerName =
  | "halo"
  | "halo-3-regions"
  | "halo-wrangler-dev"
  | "workerd-relay"
  | "y-websocket-server"
  | "hocuspocus"
  | "ws-relay";
/** `halo-3-regions` is opt-in (`--servers`): the same rooms, replicated to two more regions. */
export const ALL_SERVERS: readonly ServerName[] = [
  "halo",
  "y-websocket-server",
  "hocuspocus",
  "ws-relay",
];

export interface Workload {
  label: string;
  kind: WorkloadKind;
  rooms: number;
  clientsPerRoom: number;
  updatesPerSecond: number;
  /** Skipped by --quick. */
  heavy: boolean;
}

function workload(
  kind: WorkloadKind,
  rooms: number,
  clientsPerRoom: number,
  updatesPerSecond: number,
  heavy = false,
): Workload {
  const label = `${kind} R${rooms} C${clientsPerRoom} U${updatesPerSecond}`;
  return { label, kind, rooms, clientsPerRoom, updatesPerSecond, heavy };
}

export const WORKLOADS: readonly Workload[] = [
  workload("awareness", 1, 50, 10),
  workload("awareness", 1, 200, 2),
  workload("awareness", 1, 200, 10),
  workload("doc", 20, 10, 5),
  workload("awareness", 1, 1000, 1, true),
];

export interface FanoutOptions {
  servers?: readonly ServerName[];
  /** Default 3 (1 with quick). */
  runs?: number;
  /** Measured seconds per run. Default 10 (3 with quick). */
  durationSeconds?: number;
  warmupSeconds?: number;
  /** Cap on waiting for in-flight messages after sending stops. Default 10. */
  drainSeconds?: number;
  /** 1 run of 3 s, heavy workloads skipped. */
  quick?: boolean;
  /** Keep only workloads whose label contains this text. */
  only?: string;
  /** Where the JSON goes; default bench/results. */
  outDir?: string;
  log?: (line: string) => void;
}

export interface RunRecord {
  workload: string;
  server: ServerName;
  run: number;
  ok: boolean;
  error?: string;
  load?: LoadResult;
  serverCpuSeconds?: number;
  serverCpuSecondsByName?: Record<string, number>;
  peakRssBytes?: number;
  peakCoreRssBytes?: number;
  peakRssByName?: Record<string, number>;
}

export interface SummaryRow {
  workload: string;
  server: ServerName;
  okRuns: number;
  failedRuns: number;
  deliveredPerSecond: number;
  arrivalsPerSecond: number;
  deliveryRatio: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  framesPerDelivered: number;
  bytesPerDelivered: number;
  serverCpuSecondsPer1kDelivered: number;
  peakRssMB: number;
  peakCoreRssMB: number;
  connectFailures: number;
  disconnects: number;
  generatorCpuSeconds: number;
  sendLagP99Ms: number;
}

export interface RatioRow {
  workload: string;
  peer: ServerName;
  deliveredPerSecond: number;
  p50: number;
  p99: number;
  peakRss: number;
  peakCoreRss: number;
}

export interface FanoutReport {
  date: string;
  machine: { cpuModel: string; cores: number; totalMemoryBytes: number; node: string };
  settings: {
    servers: ServerName[];
    runs: number;
    durationSeconds: number;
    warmupSeconds: number;
    drainSeconds: number;
    workloads: Workload[];
  };
  records: RunRecord[];
  summary: SummaryRow[];
  ratios: RatioRow[];
  markdown: string;
  jsonPath: string;
}

const STARTERS: Record<ServerName, (port: number) => Promise<ServerHandle>> = {
  // One region, as the peers are one process; its default limits and coalescing. Miniflare's
  // API runs the deployable bundle with no dev proxy in front (bench/miniflare-host.ts).
  halo: (port) => startHaloMiniflare(port, { vars: { HALO_CONFIG: haloBenchConfig() } }),
  // wrangler.toml's development configuration: every room replicates to a home and a backup.
  "halo-3-regions": (port) => startHaloMiniflare(port, { vars: { HALO_CONFIG: devConfig() } }),
  // The same as `halo`, behind `wrangler dev` and its proxy: what that hop costs.
  "halo-wrangler-dev": (port) => startHalo(port, { vars: { HALO_CONFIG: haloBenchConfig() } }),
  // The floor inside workerd: a Durable Object relaying every frame, no Yjs (opt-in).
  "workerd-relay": startWorkerdRelay,
  "y-websocket-server": startYWebsocketServer,
  hocuspocus: startHocuspocus,
  "ws-relay": startWsRelay,
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

async function runOne(
  w: Workload,
  server: ServerName,
  run: number,
  durationSeconds: number,
  warmupSeconds: number,
  drainSeconds: number,
): Promise<RunRecord> {
  const record: RunRecord = { workload: w.label, server, run, ok: false };
  let handle: ServerHandle | null = null;
  try {
    const port = await getFreePort();
    handle = await STARTERS[server](port);
    const h = handle;
    // Fresh room names per run, so no server state leaks between runs.
    const roomPrefix = `fanout-${w.kind}-${Date.now().toString(36)}-${run}-${Math.random().toString(36).slice(2, 8)}`;
    const load = await runLoad({
      url: (room) => h.url(room),
      rooms: w.rooms,
      clientsPerRoom: w.clientsPerRoom,
      updatesPerSecond: w.updatesPerSecond,
      durationSeconds,
      warmupSeconds,
      kind: w.kind,
      framing: h.framing,
      roomPrefix,
      drainTimeoutMs: drainSeconds * 1000,
      onMeasureStart: () => h.beginWindow(),
      onMeasureEnd: () => h.endWindow(),
    });
    record.load = load;
    record.serverCpuSeconds = h.cpuSeconds();
    record.serverCpuSecondsByName = h.cpuSecondsByName();
    record.peakRssBytes = h.peakRssBytes();
    record.peakCoreRssBytes = h.peakCoreRssBytes();
    record.peakRssByName = h.peakRssByName();
    record.ok = load.connected > 0;
    if (!record.ok) record.error = "no client could connect";
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
  } finally {
    await handle?.stop();
  }
  return record;
}

function summarize(records: RunRecord[], w: Workload, server: ServerName): SummaryRow {
  const mine = records.filter((r) => r.workload === w.label && r.server === server);
  const ok = mine.filter((r) => r.ok && r.load !== undefined);
  const pick = (f: (r: RunRecord & { load: LoadResult }) => number): number =>
    median(ok.map((r) => f(r as RunRecord & { load: LoadResult })));
  return {
    workload: w.label,
    server,
    okRuns: ok.length,
    failedRuns: mine.length - ok.length,
    deliveredPerSecond: pick((r) => r.load.deliveredPerSecond),
    arrivalsPerSecond: pick((r) => r.load.arrivalsPerSecond),
    deliveryRatio: pick((r) => r.load.deliveryRatio),
    p50Ms: pick((r) => r.load.latencyMs.p50),
    p95Ms: pick((r) => r.load.latencyMs.p95),
    p99Ms: pick((r) => r.load.latencyMs.p99),
    maxMs: pick((r) => r.load.latencyMs.max),
    framesPerDelivered: pick((r) => r.load.framesPerDelivered),
    bytesPerDelivered: pick((r) => r.load.bytesPerDelivered),
    serverCpuSecondsPer1kDelivered: pick((r) =>
      r.load.delivered > 0
        ? ((r.serverCpuSeconds ?? Number.NaN) / r.load.delivered) * 1000
        : Number.NaN,
    ),
    peakRssMB: pick((r) => (r.peakRssBytes ?? Number.NaN) / 2 ** 20),
    peakCoreRssMB: pick((r) => (r.peakCoreRssBytes ?? Number.NaN) / 2 ** 20),
    connectFailures: pick((r) => r.load.connectFailures),
    disconnects: pick((r) => r.load.disconnects),
    generatorCpuSeconds: pick((r) => r.load.generatorCpuSeconds),
    sendLagP99Ms: pick((r) => r.load.sendLagMs.p99),
  };
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

function renderMarkdown(report: Omit<FanoutReport, "markdown" | "jsonPath">): string {
  const { machine, settings } = report;
  const lines: string[] = [];
  lines.push(`# Fan-out benchmark — ${report.date}`);
  lines.push("");
  lines.push(
    `Machine: ${machine.cpuModel}, ${machine.cores} cores, ${fmt(machine.totalMemoryBytes / 2 ** 30, 1)} GiB RAM, Node ${machine.node}.`,
  );
  lines.push(
    `**The load generator runs in the benchmark's own Node process on the same ${machine.cores}-core machine as the server**, so generator and server compete for CPU; absolute numbers are a lower bound on what the server alone could do, and the heaviest workloads may be generator-bound (see gen CPU / send lag).`,
  );
  lines.push(
    `Runs: ${settings.runs} per server per workload, ${settings.durationSeconds} s measured after ${settings.warmupSeconds} s warmup (drain cap ${settings.drainSeconds} s), interleaved across servers, fresh server process and fresh rooms per run. Values are medians over runs.`,
  );
  lines.push("");
  lines.push(
    "| workload | server | runs | delivered/s | arrivals/s | delivery | p50 ms | p95 ms | p99 ms | max ms | frames/upd | bytes/upd | srv CPU s/1k | peak RSS MB (tree) | core RSS MB | conn fail | disc | gen CPU s | send lag p99 ms |",
  );
  lines.push("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const s of report.summary) {
    const runs = s.failedRuns > 0 ? `${s.okRuns} (+${s.failedRuns} failed)` : `${s.okRuns}`;
    lines.push(
      `| ${s.workload} | ${s.server} | ${runs} | ${fmt(s.deliveredPerSecond, 0)} | ${fmt(s.arrivalsPerSecond, 0)} | ${fmt(s.deliveryRatio * 100, 1)}% | ${fmt(s.p50Ms, 2)} | ${fmt(s.p95Ms, 2)} | ${fmt(s.p99Ms, 2)} | ${fmt(s.maxMs, 1)} | ${fmt(s.framesPerDelivered, 3)} | ${fmt(s.bytesPerDelivered, 1)} | ${fmt(s.serverCpuSecondsPer1kDelivered, 4)} | ${fmt(s.peakRssMB, 1)} | ${fmt(s.peakCoreRssMB, 1)} | ${fmt(s.connectFailures, 0)} | ${fmt(s.disconnects, 0)} | ${fmt(s.generatorCpuSeconds, 2)} | ${fmt(s.sendLagP99Ms, 2)} |`,
    );
  }
  if (report.ratios.length > 0) {
    lines.push("");
    lines.push(
      "Halo / peer (medians). delivered/s: higher is better for Halo; p50, p99, RSS: lower is better for Halo.",
    );
    lines.push("");
    lines.push("| workload | peer | delivered/s | p50 | p99 | peak RSS (tree) | core RSS |");
    lines.push("|---|---|---|---|---|---|---|");
    for (const r of report.ratios) {
      lines.push(
        `| ${r.workload} | ${r.peer} | ${fmt(r.deliveredPerSecond, 2)}x | ${fmt(r.p50, 2)}x | ${fmt(r.p99, 2)}x | ${fmt(r.peakRss, 2)}x | ${fmt(r.peakCoreRss, 2)}x |`,
      );
    }
  }
  lines.push("");
  lines.push(
    "Notes: delivery = distinct (message, receiving client) pairs for messages sent in the window / (sent x (C-1)); delivered/s divides by the time from window start to the last delivery (at least the window); arrivals/s counts every distinct delivery that arrived during the window whatever its send time (the sustained fan-out rate, meaningful when a saturated server never catches up). Delivery ratio only counts what arrived before the drain ended (all expected delivered, 3 s without progress, or the drain cap). frames/bytes per update count every frame received by all clients from window start to drain end, except frames carrying only pre-window messages (own echoes and handshakes included; WebSocket framing bytes excluded). Latency is taken at receipt in the generator, so it includes the generator's own event-loop delay; send lag shows how late the generator fired sends (messages are timestamped when actually sent). disc = sockets the server closed mid-run. Server CPU and RSS cover the whole process tree; for Halo that includes npx, wrangler's Node process and esbuild, so 'core RSS' (workerd only for Halo; the single process otherwise) is the fairer memory comparison.",
  );
  if (settings.servers.includes("hocuspocus")) {
    lines.push("");
    lines.push(
      "Hocuspocus speaks the same y-protocols messages, but every frame (both directions) starts with the document name as a varString, which adds its length to bytes/upd; it acknowledges each document update to its sender with a SyncStatus frame (counted in frames/upd: +1/(C-1) per update in doc workloads); and it coalesces what arrives in one event-loop turn into one frame (frames/upd below 1 under load).",
    );
  }
  const closed = report.records.filter((r) => (r.load?.disconnects ?? 0) > 0);
  if (closed.length > 0) {
    lines.push("");
    lines.push("Mid-run disconnects (close code and reason -> sockets):");
    for (const r of closed) {
      lines.push(
        `- ${r.workload} / ${r.server} run ${r.run}: ${JSON.stringify(r.load?.closeCodes ?? {})}`,
      );
    }
  }
  const refused = report.records.filter((r) => (r.load?.connectFailures ?? 0) > 0);
  if (refused.length > 0) {
    lines.push("");
    lines.push("Connect failures (error -> clients):");
    for (const r of refused) {
      lines.push(
        `- ${r.workload} / ${r.server} run ${r.run}: ${JSON.stringify(r.load?.connectErrors ?? {})}`,
      );
    }
  }
  const failures = report.records.filter((r) => !r.ok);
  if (failures.length > 0) {
    lines.push("");
    lines.push("Failed runs:");
    for (const f of failures) {
      const firstLine = (f.error ?? "unknown error").split("\n")[0];
      lines.push(`- ${f.workload} / ${f.server} run ${f.run}: ${firstLine}`);
    }
  }
  return lines.join("\n");
}

export async function runFanoutBench(options: FanoutOptions = {}): Promise<FanoutReport> {
  const quick = options.quick ?? false;
  const servers = [...(options.servers ?? ALL_SERVERS)];
  const runs = options.runs ?? (quick ? 1 : 3);
  const durationSeconds = options.durationSeconds ?? (quick ? 3 : 10);
  const warmupSeconds = options.warmupSeconds ?? 2;
  const drainSeconds = options.drainSeconds ?? 10;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const workloads = WORKLOADS.filter(
    (w) => !(quick && w.heavy) && (options.only === undefined || w.label.includes(options.only)),
  );
  const date = new Date().toISOString();

  const records: RunRecord[] = [];
  for (const w of workloads) {
    // Interleaved: run 1 of every server, then run 2..., so drift hits all alike.
    for (let run = 1; run <= runs; run++) {
      for (const server of servers) {
        log(`[fanout] ${w.label} | ${server} | run ${run}/${runs} ...`);
        const rec = await runOne(w, server, run, durationSeconds, warmupSeconds, drainSeconds);
        records.push(rec);
        if (rec.ok && rec.load !== undefined) {
          const l = rec.load;
          log(
            `[fanout]   delivered ${l.delivered}/${l.expected} (${fmt(l.deliveryRatio * 100, 1)}%), p50 ${fmt(l.latencyMs.p50, 2)} ms, p99 ${fmt(l.latencyMs.p99, 2)} ms, server CPU ${fmt(rec.serverCpuSeconds ?? Number.NaN, 2)} s, RSS ${fmt((rec.peakRssBytes ?? 0) / 2 ** 20, 1)} MB, conn fail ${l.connectFailures}, disconnects ${l.disconnects}`,
          );
        } else {
          log(`[fanout]   FAILED: ${(rec.error ?? "").split("\n")[0]}`);
        }
        // Let sockets in TIME_WAIT and the previous server's teardown settle.
        await sleep(500);
      }
    }
  }

  const summary: SummaryRow[] = [];
  const ratios: RatioRow[] = [];
  for (const w of workloads) {
    const rows = servers.map((s) => summarize(records, w, s));
    summary.push(...rows);
    const halo = rows.find((r) => r.server === "halo");
    if (halo === undefined) continue;
    for (const peer of rows) {
      if (peer.server === "halo") continue;
      ratios.push({
        workload: w.label,
        peer: peer.server,
        deliveredPerSecond: halo.deliveredPerSecond / peer.deliveredPerSecond,
        p50: halo.p50Ms / peer.p50Ms,
        p99: halo.p99Ms / peer.p99Ms,
        peakRss: halo.peakRssMB / peer.peakRssMB,
        peakCoreRss: halo.peakCoreRssMB / peer.peakCoreRssMB,
      });
    }
  }

  const cpu = cpus();
  const base = {
    date,
    machine: {
      cpuModel: cpu[0]?.model ?? "unknown",
      cores: cpu.length,
      totalMemoryBytes: totalmem(),
      node: process.versions.node,
    },
    settings: { servers, runs, durationSeconds, warmupSeconds, drainSeconds, workloads },
    records,
    summary,
    ratios,
  };
  const markdown = renderMarkdown(base);
  const outDir = options.outDir ?? join(PROJECT_ROOT, "bench", "results");
  await mkdir(outDir, { recursive: true });
  const jsonPath = join(outDir, `fanout-${date.replace(/[:.]/g, "-")}.json`);
  const report: FanoutReport = { ...base, markdown, jsonPath };
  await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

function parseArgs(argv: string[]): FanoutOptions {
  const opts: FanoutOptions = {};
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  const positiveNumber = (raw: string, flag: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case "--quick":
        opts.quick = true;
        break;
      case "--servers": {
        const names = value(i++, arg)
          .split(",")
          .filter((s) => s !== "");
        for (const n of names) {
          if (!(n in STARTERS)) {
            throw new Error(`unknown server "${n}" (expected ${Object.keys(STARTERS).join(", ")})`);
          }
        }
        opts.servers = names as ServerName[];
        break;
      }
      case "--runs":
        opts.runs = Math.round(positiveNumber(value(i++, arg), arg));
        break;
      case "--duration":
        opts.durationSeconds = positiveNumber(value(i++, arg), arg);
        break;
      case "--warmup": {
        const w = Number(value(i++, arg));
        if (!Number.isFinite(w) || w < 0) throw new Error("--warmup must be >= 0");
        opts.warmupSeconds = w;
        break;
      }
      case "--drain":
        opts.drainSeconds = positiveNumber(value(i++, arg), arg);
        break;
      case "--only":
        opts.only = value(i++, arg);
        break;
      default:
        throw new Error(`unknown argument "${arg}"`);
    }
  }
  return opts;
}

const isMain =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);

if (isMain) {
  let options: FanoutOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  try {
    const report = await runFanoutBench(options);
    process.stdout.write(`${report.markdown}\n\nJSON: ${report.jsonPath}\n`);
    // Lingering sockets/timers must not keep the CLI alive.
    process.exit(0);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  }
}
