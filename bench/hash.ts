/**
 * Room -> shard routing benchmark: jump hash against a virtual-node hash ring,
 * rendezvous hashing and plain `hash % N`, on the same deterministic room names.
 *
 * Measures, per shard count N: lookup throughput (hashing the room name
 * included, as a router would), load balance (peak/mean shard load) and churn
 * when growing to N+1 shards (share of rooms that move, against the ideal
 * 1/(N+1)).
 *
 * Standalone: `npx tsx bench/hash.ts [--rooms N] [--shards 4,8,16] [--json out.json]`.
 */

import { writeFileSync } from "node:fs";
import os from "node:os";
import { pathToFileURL } from "node:url";
import { hash32, hash64 } from "../src/routing/hash";
import { jumpHash } from "../src/routing/jump-hash";
import { prepareRendezvous } from "../src/routing/rendezvous";
import { HashRing } from "./hash-ring";
import { makeRoomNames } from "./prng";

export interface HashBenchOptions {
  /** Rooms used for load and movement figures. Default 1,000,000. */
  rooms?: number;
  /** Shard counts N to test (each also builds N+1 for the movement figure). */
  shardCounts?: number[];
  /** Virtual nodes per shard for the ring variants. Default [160, 1000]. */
  ringVnodes?: number[];
  /** Rooms per timed sweep for O(1)/O(log n) methods. Default min(rooms, 200,000). */
  timingRooms?: number;
  /** Rooms per timed sweep for rendezvous (O(N) per lookup). Default min(timingRooms, 50,000). */
  rendezvousTimingRooms?: number;
  /**
   * Rooms for rendezvous load/movement figures (it costs N+1 scores per room
   * per shard count). Default: all `rooms`; lower it on slow machines.
   */
  rendezvousLoadRooms?: number;
  /** Measured rounds (after one warm-up round); the median is reported. Default 5. */
  rounds?: number;
  /** Minimum wall time of one timed measurement, in ms. Default 40. */
  minSampleMs?: number;
  /** PRNG seed for room names. */
  seed?: number;
  /** Progress sink (e.g. stderr); silent by default. */
  log?: (line: string) => void;
}

export interface HashBenchRow {
  /** `jump`, `ring-<vnodes>`, `rendezvous` or `mod`. */
  method: string;
  shards: number;
  /** Median over rounds. */
  lookupsPerSec: number;
  lookupsPerSecRounds: number[];
  /** lookupsPerSec / jump's lookupsPerSec at the same N. */
  vsJump: number;
  timingRooms: number;
  loadRooms: number;
  peakToMean: number;
  minToMean: number;
  /** Standard deviation of shard loads over their mean. */
  loadCv: number;
  /** Rough expected peak/mean if rooms were thrown uniformly at random (noise floor). */
  randomPeakToMean: number;
  /** Share of loadRooms whose shard differs between N and N+1. */
  movedShare: number;
  idealMovedShare: number;
  movedVsIdeal: number;
}

export interface HashBenchResult {
  name: "hash-routing";
  startedAt: string;
  durationMs: number;
  environment: {
    node: string;
    platform: string;
    arch: string;
    cpuModel: string;
    cpuCount: number;
  };
  config: Required<Omit<HashBenchOptions, "log">>;
  /** Throughput of the bare hash functions over the timing rooms, for context. */
  hashOnly: { hash32PerSec: number; hash64PerSec: number };
  rows: HashBenchRow[];
  notes: string[];
  markdown: string;
}

/** A router built for one shard count. */
interface Router {
  lookup(room: string): number;
  /** Looks up names[0..count) and returns a checksum, so the JIT cannot drop the work. */
  sweep(names: readonly string[], count: number): number;
}

interface MethodSpec {
  id: string;
  build(shards: number): Router;
}

function jumpMethod(): MethodSpec {
  return {
    id: "jump",
    build(n) {
      return {
        lookup: (room) => jumpHash(hash64(room), n),
        sweep(names, count) {
          let acc = 0;
          for (let i = 0; i < count; i++) acc += jumpHash(hash64(names[i]!), n);
          return acc;
        },
      };
    },
  };
}

function ringMethod(vnodes: number): MethodSpec {
  return {
    id: `ring-${vnodes}`,
    build(n) {
      const ring = new HashRing(n, vnodes);
      return {
        lookup: (room) => ring.lookup(room),
        sweep(names, count) {
          let acc = 0;
          for (let i = 0; i < count; i++) acc += ring.lookup(names[i]!);
          return acc;
        },
      };
    },
  };
}

function shardNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `shard-${i}`);
}

function rendezvousMethod(): MethodSpec {
  return {
    id: "rendezvous",
    build(n) {
      // Prepared set: the per-node hashing is done once, as a real router would.
      const set = prepareRendezvous(shardNames(n));
      return {
        lookup: (room) => set.pickIndex(room),
        sweep(names, count) {
          let acc = 0;
          for (let i = 0; i < count; i++) acc += set.pickIndex(names[i]!);
          return acc;
        },
      };
    },
  };
}

function modMethod(): MethodSpec {
  return {
    id: "mod",
    build(n) {
      return {
        lookup: (room) => hash32(room) % n,
        sweep(names, count) {
          let acc = 0;
          for (let i = 0; i < count; i++) acc += hash32(names[i]!) % n;
          return acc;
        },
      };
    },
  };
}

// Written to after every sweep so no result is ever dead.
let sink = 0;

function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Runs whole sweeps until at least minNs has passed; returns lookups per second. */
function timeSweeps(
  sweep: (names: readonly string[], count: number) => number,
  names: readonly string[],
  count: number,
  minNs: bigint,
): number {
  let lookups = 0;
  const start = nowNs();
  let elapsed = 0n;
  do {
    sink ^= sweep(names, count);
    lookups += count;
    elapsed = nowNs() - start;
  } while (elapsed < minNs);
  return lookups / (Number(elapsed) / 1e9);
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Interleaved rounds: every round times each candidate once, in a rotating
 * order, so thermal/frequency drift and GC pauses hit all candidates alike.
 * Round 0 is warm-up (JIT tiers up) and is discarded.
 */
function interleaved(
  candidates: readonly {
    sweep: (names: readonly string[], count: number) => number;
    count: number;
  }[],
  names: readonly string[],
  rounds: number,
  minNs: bigint,
): number[][] {
  const samples: number[][] = candidates.map(() => []);
  for (let r = 0; r <= rounds; r++) {
    for (let k = 0; k < candidates.length; k++) {
      const idx = (k + r) % candidates.length;
      const c = candidates[idx]!;
      const rate = timeSweeps(c.sweep, names, c.count, minNs);
      if (r > 0) samples[idx]!.push(rate);
    }
  }
  return samples;
}

interface Balance {
  peakToMean: number;
  minToMean: number;
  cv: number;
}

function balance(assign: Int32Array, count: number, shards: number): Balance {
  const loads = new Float64Array(shards);
  for (let i = 0; i < count; i++) loads[assign[i]!]! += 1;
  const mean = count / shards;
  let peak = 0;
  let low = Number.POSITIVE_INFINITY;
  let sq = 0;
  for (const l of loads) {
    if (l > peak) peak = l;
    if (l < low) low = l;
    sq += (l - mean) ** 2;
  }
  return { peakToMean: peak / mean, minToMean: low / mean, cv: Math.sqrt(sq / shards) / mean };
}

function assignAll(router: Router, names: readonly string[], count: number): Int32Array {
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = router.lookup(names[i]!);
  return out;
}

/** Expected max/mean of a balls-into-bins throw (mean + sigma*sqrt(2 ln N)); a noise floor. */
function randomPeak(rooms: number, shards: number): number {
  if (shards === 1) return 1;
  const mean = rooms / shards;
  const sigma = Math.sqrt(mean * (1 - 1 / shards));
  return 1 + (sigma * Math.sqrt(2 * Math.log(shards))) / mean;
}

function fmtRate(perSec: number): string {
  return `${(perSec / 1e6).toFixed(2)} M`;
}

function fmtPct(x: number, digits = 2): string {
  return `${(x * 100).toFixed(digits)}%`;
}

function renderMarkdown(
  result: Omit<HashBenchResult, "markdown">,
  methodIds: readonly string[],
): string {
  const lines: string[] = [];
  const e = result.environment;
  lines.push(
    `### Room → shard routing (${e.cpuModel}, ${e.cpuCount} CPUs, Node ${e.node}, ${(result.durationMs / 1000).toFixed(1)} s)`,
  );
  lines.push("");
  lines.push(
    `Bare hashes: hash32 ${fmtRate(result.hashOnly.hash32PerSec)}/s, hash64 ${fmtRate(result.hashOnly.hash64PerSec)}/s.`,
  );
  lines.push("");
  lines.push(
    "| N | method | lookups/s | vs jump | peak/mean | min/mean | random≈ | moved N→N+1 | ideal 1/(N+1) | moved/ideal | load rooms |",
  );
  lines.push("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  const order = new Map(methodIds.map((id, i) => [id, i]));
  const rows = [...result.rows].sort(
    (a, b) => a.shards - b.shards || (order.get(a.method) ?? 0) - (order.get(b.method) ?? 0),
  );
  for (const r of rows) {
    const timing = r.timingRooms !== result.config.timingRooms ? ` ¹` : "";
    lines.push(
      `| ${r.shards} | ${r.method} | ${fmtRate(r.lookupsPerSec)}${timing} | ${r.vsJump.toFixed(2)}× | ${r.peakToMean.toFixed(3)} | ${r.minToMean.toFixed(3)} | ${r.randomPeakToMean.toFixed(3)} | ${fmtPct(r.movedShare)} | ${fmtPct(r.idealMovedShare)} | ${r.movedVsIdeal.toFixed(2)} | ${r.loadRooms.toLocaleString("en-US")} |`,
    );
  }
  lines.push("");
  for (const note of result.notes) lines.push(`- ${note}`);
  return lines.join("\n");
}

export async function runHashBench(options: HashBenchOptions = {}): Promise<HashBenchResult> {
  const started = Date.now();
  const rooms = options.rooms ?? 1_000_000;
  const timingRooms = Math.min(options.timingRooms ?? 200_000, rooms);
  const config: Required<Omit<HashBenchOptions, "log">> = {
    rooms,
    shardCounts: options.shardCounts ?? [4, 8, 16, 32, 64, 128, 256],
    ringVnodes: options.ringVnodes ?? [160, 1000],
    timingRooms,
    rendezvousTimingRooms: Math.min(options.rendezvousTimingRooms ?? 50_000, timingRooms),
    rendezvousLoadRooms: Math.min(options.rendezvousLoadRooms ?? rooms, rooms),
    rounds: Math.max(1, options.rounds ?? 5),
    minSampleMs: options.minSampleMs ?? 40,
    seed: options.seed ?? 0x5eed,
  };
  const log = options.log ?? (() => {});
  const minNs = BigInt(Math.round(config.minSampleMs * 1e6));

  const names = makeRoomNames(rooms, config.seed);
  const methods: MethodSpec[] = [
    jumpMethod(),
    ...config.ringVnodes.map((v) => ringMethod(v)),
    rendezvousMethod(),
    modMethod(),
  ];
  const methodIds = methods.map((m) => m.id);

  // Bare hash cost, so lookup rates can be read as "hash + routing".
  const [h32, h64] = interleaved(
    [
      {
        count: timingRooms,
        sweep(ns, count) {
          let acc = 0;
          for (let i = 0; i < count; i++) acc ^= hash32(ns[i]!);
          return acc;
        },
      },
      {
        count: timingRooms,
        sweep(ns, count) {
          let acc = 0;
          for (let i = 0; i < count; i++) acc ^= hash64(ns[i]!).lo;
          return acc;
        },
      },
    ],
    names,
    config.rounds,
    minNs,
  );
  const hashOnly = { hash32PerSec: median(h32!), hash64PerSec: median(h64!) };

  const rows: HashBenchRow[] = [];
  for (const n of config.shardCounts) {
    const t0 = Date.now();
    const routers = methods.map((m) => m.build(n));
    const timingCounts = methods.map((m) =>
      m.id === "rendezvous" ? config.rendezvousTimingRooms : timingRooms,
    );
    const samples = interleaved(
      routers.map((r, i) => ({ sweep: r.sweep, count: timingCounts[i]! })),
      names,
      config.rounds,
      minNs,
    );
    const rates = samples.map((s) => median(s));
    const jumpRate = rates[0]!;
    for (let i = 0; i < methods.length; i++) {
      const m = methods[i]!;
      const loadRooms = m.id === "rendezvous" ? config.rendezvousLoadRooms : rooms;
      const before = assignAll(routers[i]!, names, loadRooms);
      const after = assignAll(m.build(n + 1), names, loadRooms);
      let moved = 0;
      for (let k = 0; k < loadRooms; k++) if (before[k] !== after[k]) moved++;
      const bal = balance(before, loadRooms, n);
      const movedShare = moved / loadRooms;
      const ideal = 1 / (n + 1);
      rows.push({
        method: m.id,
        shards: n,
        lookupsPerSec: rates[i]!,
        lookupsPerSecRounds: samples[i]!,
        vsJump: rates[i]! / jumpRate,
        timingRooms: timingCounts[i]!,
        loadRooms,
        peakToMean: bal.peakToMean,
        minToMean: bal.minToMean,
        loadCv: bal.cv,
        randomPeakToMean: randomPeak(loadRooms, n),
        movedShare,
        idealMovedShare: ideal,
        movedVsIdeal: movedShare / ideal,
      });
    }
    log(`N=${n} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  const notes = [
    `Room names: ${rooms.toLocaleString("en-US")} deterministic \`room-<i>-<base36>\` strings (splitmix32, seed ${config.seed}).`,
    `lookups/s: median of ${config.rounds} interleaved rounds (after 1 warm-up round), each ≥ ${config.minSampleMs} ms of whole sweeps over the first ${timingRooms.toLocaleString("en-US")} rooms; includes hashing the room name.`,
    `¹ rendezvous is O(N) per lookup, so its lookups/s is timed on the first ${config.rendezvousTimingRooms.toLocaleString("en-US")} rooms; its load/movement figures use ${config.rendezvousLoadRooms.toLocaleString("en-US")} rooms (see "load rooms").`,
    `Hashes: jump uses hash64 (two murmur3 lanes); ring and mod use hash32 (murmur3 x86_32); rendezvous scores hash64(room) against precomputed hash64(node). Ring points: hash32 of \`shard-<s>#<v>\`.`,
    "random≈: expected peak/mean if rooms were assigned uniformly at random — the sampling-noise floor for any hash-based scheme at this room count.",
  ];
  const partial = {
    name: "hash-routing" as const,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    environment: {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
      cpuCount: os.cpus().length,
    },
    config,
    hashOnly,
    rows,
    notes,
  };
  // Keep the sink observable so the compiler must keep every sweep.
  if (sink === 0x7fffffff) log("(sink)");
  return { ...partial, markdown: renderMarkdown(partial, methodIds) };
}

function parseArgs(argv: readonly string[]): { options: HashBenchOptions; json?: string } {
  const options: HashBenchOptions = {};
  let json: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === "--rooms" && value !== undefined) {
      options.rooms = Number(value);
      i++;
    } else if (arg === "--shards" && value !== undefined) {
      options.shardCounts = value.split(",").map(Number);
      i++;
    } else if (arg === "--json" && value !== undefined) {
      json = value;
      i++;
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  return json === undefined ? { options } : { options, json };
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const { options, json } = parseArgs(process.argv.slice(2));
  const result = await runHashBench({
    ...options,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${result.markdown}\n`);
  if (json !== undefined) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
}
