/**
 * Replication between regions (issue 6), measured with the deterministic replication simulator
 * (test/sim/replication-cluster.ts: every region's shard running the real room, link and driver
 * cores, the real membership cores, stock y-websocket clients, RPC over a simulated network with
 * the RTT table of test/sim/latency.ts). Virtual time: the figures do not depend on this
 * machine's speed; only the real time to run does.
 *
 *   1. Delivery latency per (origin -> target) pair against its one-way latency, and the goal
 *      p50 <= one-way + batch window + 5 ms.
 *   2. Messages and bytes between regions per change, batches apart from anti-entropy, against a
 *      naive full-mesh relay (every change to every other region as its own message), at a
 *      sparse and a busy change rate.
 *   3. Delivery under 0%, 1% and 5% message loss.
 *   4. Time to repair after a partition of one region heals.
 *
 * The workload is `runLatencyScenario`'s (same seeds, same draws): stock clients in every region
 * of one room, each typing or moving its cursor at exponential intervals; this file runs it with
 * its own instruments (which RPC carries what, each edit's own update, which cursor state a
 * later one overtook) and a longer tail, so that a lost change has two anti-entropy periods to
 * be repaired before it counts as unfinished.
 *
 *   npx tsx bench/replication.ts [--seeds N] [--quick]
 */
import * as Y from "yjs";
import { limitsSchema } from "../src/config/config-schema";
import { regionRtt } from "../test/sim/latency";
import type { LinkFaults } from "../test/sim/network";
import {
  disagreements,
  LATENCY_ROOM,
  type Probe,
  ReplicationCluster,
  randomChange,
  replicaText,
  SIM_REPLICATION,
  type SimClient,
  wireBytes,
} from "../test/sim/replication-cluster";

// Options.

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at === -1) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} takes a positive integer`);
  return value;
}

const QUICK = process.argv.includes("--quick");
const SEEDS = option("seeds", QUICK ? 2 : 10);
/** Measured window of each latency run (virtual ms). */
const WINDOW_MS = QUICK ? 20_000 : 60_000;
const CLIENTS_PER_REGION = 2;
/** Mean gap between two changes of one client, for the latency and loss runs (ms). */
const CHANGE_EVERY_MS = 1_000;
/** The sparse and busy rates of the traffic runs (ms per client). */
const TRAFFIC_RATES = [500, 50];
const LOSSES = [0, 0.01, 0.05];
/** Partition lengths: shorter than a suspicion (5 s), and long enough for a death (about 9 s). */
const PARTITIONS_MS = [3_000, 30_000];
const BATCH_MS = SIM_REPLICATION.batchMs;
/** The shipped per-connection frame rate (limits.messagesPerSecond). */
const LIMITS_PER_SECOND = limitsSchema.parse({}).messagesPerSecond;
const ANTI_ENTROPY_MS = SIM_REPLICATION.antiEntropyMs;
/** After the window, two anti-entropy periods (and a second) for lost changes to be repaired. */
const TAIL_MS = 2 * ANTI_ENTROPY_MS + 1_000;
/** The issue's goal: p50 within one-way latency + batch window + this. */
const GOAL_SLACK_MS = 5;

const THREE = ["wnam", "weur", "apac"] as const;
const FIVE = ["wnam", "enam", "weur", "apac", "oc"] as const;
const REGION_SETS: ReadonlyArray<readonly string[]> = [THREE, FIVE];

const oneWay = (a: string, b: string): number => regionRtt(a, b) / 2;

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : "-");
const pct = (part: number, whole: number, digits = 1): string =>
  whole === 0 ? "-" : `${((100 * part) / whole).toFixed(digits)}%`;

// The workload, instrumented.

type Kind = Probe["kind"];

interface Workload {
  seed: number;
  regions: readonly string[];
  durationMs: number;
  /** Mean gap between two changes of one client (ms). */
  changeEveryMs: number;
  /** Probability that a change is a document edit (otherwise a cursor move); 0.5 as runLatencyScenario. */
  edits: number;
  faults?: LinkFaults;
}

interface Delivery {
  kind: Kind;
  origin: string;
  target: string;
  ms: number;
}

interface Traffic {
  /** RPC calls (requests). */
  calls: number;
  /** Messages: requests and the RPC answers that carry something. */
  messages: number;
  bytes: number;
}

interface WorkloadResult {
  changes: Record<Kind, number>;
  deliveries: Delivery[];
  /** Changes some region's clients never had (nor a later state of the same cursor) by the end of the tail. */
  unfinished: number;
  /** Cursor states some region never showed because the same client's next state overtook them there. */
  overtaken: number;
  /** Batches sent as a window closes (the `batch` messages of `tickReplica`). */
  batch: Traffic;
  /** Everything else: syncs, their answers, and the repairs (diff batches) they bring. */
  antiEntropy: Traffic;
  /** Of the anti-entropy messages: syncs (requests and answers), and diff batches (repairs). */
  syncMessages: number;
  repairMessages: number;
  /** The naive relay: one message per change per other region, each change's own payload. */
  naive: { messages: number; bytes: number };
  windowMs: number;
  /** Anything a well-behaved client or honest peer should never cause (e.g. a client closed by the rate limit). */
  anomalies: string[];
}

const emptyTraffic = (): Traffic => ({ calls: 0, messages: 0, bytes: 0 });

function runWorkload(w: Workload): WorkloadResult {
  const cluster = new ReplicationCluster({ seed: w.seed, regions: w.regions, rtt: regionRtt });
  try {
    cluster.start();
    const room = LATENCY_ROOM;
    const random = cluster.random.fork("bench");
    for (const region of w.regions) {
      for (let i = 0; i < CLIENTS_PER_REGION; i++) {
        const client = cluster.addClient(room, `${region}-${i}`, { name: `${region}-${i}` });
        cluster.connect(client, region);
      }
    }
    // Joins settle first: the replica set forms, then measurement starts.
    cluster.runFor(2 * cluster.timings.antiEntropyMs);
    if (w.faults) cluster.setFaults(w.faults);

    // Every RPC request while measuring: a batch as its window closes (depth 0), or anti-entropy.
    const batch = emptyTraffic();
    let aeCalls = 0;
    /** Bytes of each member record as a message of its own (the naive relay's awareness message). */
    const recordMessageBytes: number[] = [];
    const rpc = cluster.rpc.bind(cluster);
    cluster.rpc = (from, addressed, depth) => {
      if (cluster.measuring) {
        const { message } = addressed;
        if (depth === 0 && message.type === "batch") {
          batch.calls += 1;
          batch.messages += 1;
          batch.bytes += wireBytes(message);
          for (const record of message.members)
            recordMessageBytes.push(wireBytes({ type: "batch", room, from, members: [record] }));
        } else {
          aeCalls += 1;
        }
      }
      rpc(from, addressed, depth);
    };

    const before = cluster.stats().traffic;
    const started = cluster.now;
    cluster.measuring = true;
    cluster.checkAuthorshipOnAlarm = false;
    const clients = cluster.connectedClients(room);
    const rate = clients.length / w.changeEveryMs;
    const authorOf = new Map<Probe, SimClient>();
    const changes: Record<Kind, number> = { update: 0, awareness: 0 };
    let naiveEditBytes = 0;
    let n = 0;
    while (cluster.now - started < w.durationMs) {
      cluster.runFor(-Math.log(1 - random.next()) / rate);
      const client = random.pick(clients);
      const origin = client.connection?.region ?? "";
      n += 1;
      const probes = cluster.probes.length;
      if (random.chance(w.edits)) {
        const token = `[${client.name}.${n}]`;
        let update: Uint8Array = new Uint8Array();
        cluster.edit(
          client,
          (doc) => {
            const vector = Y.encodeStateVector(doc);
            doc.getText("t").insert(0, token);
            update = Y.encodeStateAsUpdate(doc, vector);
          },
          token,
        );
        changes.update += 1;
        naiveEditBytes += wireBytes({ type: "batch", room, from: origin, update, members: [] });
      } else {
        cluster.setState(client, { name: client.name, cursor: n });
        changes.awareness += 1;
      }
      const probe = cluster.probes[probes];
      if (probe) authorOf.set(probe, client);
    }
    cluster.measuring = false;
    const windowMs = cluster.now - started;
    const after = cluster.stats().traffic;
    cluster.runFor(TAIL_MS);

    const total = after.messages - before.messages;
    const antiEntropy: Traffic = {
      calls: aeCalls,
      messages: total - batch.messages,
      bytes: after.bytes - before.bytes - batch.bytes,
    };
    const syncMessages = after.syncs - before.syncs;

    // A cursor state overtaken by the same client's next one counts as arriving where and when
    // a later state of that client first shows (stock awareness keeps only the latest state).
    const nextState = new Map<Probe, Probe>();
    const lastState = new Map<SimClient, Probe>();
    for (const probe of cluster.probes) {
      const client = authorOf.get(probe);
      if (probe.kind !== "awareness" || !client) continue;
      const previous = lastState.get(client);
      if (previous) nextState.set(previous, probe);
      lastState.set(client, probe);
    }
    const arrival = (probe: Probe, target: string): number | undefined => {
      for (let p: Probe | undefined = probe; p; p = nextState.get(p)) {
        const ms = p.reached.get(target);
        if (ms !== undefined) return p.at + ms;
      }
      return undefined;
    };
    const deliveries: Delivery[] = [];
    let unfinished = 0;
    let overtaken = 0;
    for (const probe of cluster.probes) {
      let missing = false;
      let late = false;
      for (const target of [...probe.reached.keys(), ...probe.waiting]) {
        const at = arrival(probe, target);
        if (at === undefined) {
          missing = true;
          continue;
        }
        if (!probe.reached.has(target)) late = true;
        deliveries.push({ kind: probe.kind, origin: probe.origin, target, ms: at - probe.at });
      }
      if (missing) unfinished += 1;
      else if (late) overtaken += 1;
    }

    const others = w.regions.length - 1;
    const recordBytes =
      recordMessageBytes.length === 0 ? 0 : sum(recordMessageBytes) / recordMessageBytes.length;
    return {
      changes,
      deliveries,
      unfinished,
      overtaken,
      batch,
      antiEntropy,
      syncMessages,
      repairMessages: antiEntropy.messages - syncMessages,
      anomalies: cluster.anomalies.map(
        (a) => `seed ${w.seed} ${a.region} at ${fmt(a.at)} ms: ${a.what}`,
      ),
      naive: {
        messages: (changes.update + changes.awareness) * others,
        bytes: (naiveEditBytes + changes.awareness * recordBytes) * others,
      },
      windowMs,
    };
  } finally {
    cluster.destroy();
  }
}

/** The same workload over every seed, results pooled. */
function overSeeds(w: Omit<Workload, "seed">, base: number, seeds = SEEDS): WorkloadResult[] {
  const out: WorkloadResult[] = [];
  for (let s = 0; s < seeds; s++) {
    const result = runWorkload({ ...w, seed: base + s });
    ANOMALIES.push(...result.anomalies);
    out.push(result);
  }
  return out;
}

/** Every anomaly of every run (printed at the end; there should be none). */
const ANOMALIES: string[] = [];

/** Headline figures, gathered for the closing summary. */
const SUMMARY = {
  latency: [] as Array<{ regions: number; met: number; pairs: number; worstRatio: number }>,
  traffic: [] as Array<{
    regions: number;
    label: string;
    every: number;
    messages: number;
    bytes: number;
    batchCalls: number;
    syncsPerSecond: number;
  }>,
  loss: [] as Array<{
    regions: number;
    loss: number;
    editP99: number;
    cursorP99: number;
    lateEdits: string;
    lateCursors: string;
    unfinished: number;
  }>,
  repair: [] as Array<{
    regions: number;
    partitionMs: number;
    typingP50: number;
    typingMax: number;
    p50: number;
    max: number;
    deaths: number;
    seeds: number;
    failed: number;
  }>,
};

// 1. Delivery latency against one-way latency.

function latencyTable(regions: readonly string[]): string[] {
  const runs = overSeeds(
    { regions, durationMs: WINDOW_MS, changeEveryMs: CHANGE_EVERY_MS, edits: 0.5 },
    100 * regions.length,
  );
  const deliveries = runs.flatMap((r) => r.deliveries);
  const unfinished = sum(runs.map((r) => r.unfinished));
  const rows = [
    "| origin → target | one-way (ms) | edits | edit p50 / p99 (ms) | cursors | cursor p50 / p99 (ms) | goal: p50 ≤ (ms) | goal met | p50 / one-way (edit, cursor) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  let met = 0;
  let pairs = 0;
  let worstRatio = 0;
  for (const origin of regions) {
    for (const target of regions) {
      if (origin === target) continue;
      const of = (kind: Kind) =>
        deliveries
          .filter((d) => d.kind === kind && d.origin === origin && d.target === target)
          .map((d) => d.ms);
      const edits = of("update");
      const cursors = of("awareness");
      const ow = oneWay(origin, target);
      const goal = ow + BATCH_MS + GOAL_SLACK_MS;
      const p50e = quantile(edits, 0.5);
      const p50c = quantile(cursors, 0.5);
      const ok = p50e <= goal && p50c <= goal;
      pairs += 1;
      if (ok) met += 1;
      worstRatio = Math.max(worstRatio, p50e / ow, p50c / ow);
      rows.push(
        `| ${origin} → ${target} | ${fmt(ow)} | ${edits.length} | ${fmt(p50e)} / ${fmt(quantile(edits, 0.99))} | ${cursors.length} | ${fmt(p50c)} / ${fmt(quantile(cursors, 0.99))} | ${fmt(goal)} | ${ok ? "pass" : "FAIL"} | ${fmt(p50e / ow, 2)}, ${fmt(p50c / ow, 2)} |`,
      );
    }
  }
  SUMMARY.latency.push({ regions: regions.length, met, pairs, worstRatio });
  const excess = deliveries.map((d) => d.ms - oneWay(d.origin, d.target));
  const waited = excess.filter((x) => x > 0.5).length;
  rows.push(
    "",
    `Goal met on ${met} of ${pairs} pairs. Over all pairs, delivery minus one-way latency: p50 ${fmt(quantile(excess, 0.5), 1)} ms, p99 ${fmt(quantile(excess, 0.99), 1)} ms, max ${fmt(Math.max(...excess), 1)} ms; ${pct(waited, excess.length)} of deliveries waited for a batch window. Unfinished changes: ${unfinished}.`,
  );
  return rows;
}

// 2. Traffic per change.

/**
 * The busy gap per client for cursor moves: the room's awareness changes held near 70/s. Every
 * stock y-websocket client sends back every awareness change it receives (the provider's
 * awareness handler does not look at the origin), so each client's socket carries about the
 * room's whole awareness rate; above limits.messagesPerSecond (100) the shard closes them all.
 */
function busyCursorGap(regions: readonly string[]): number {
  const clients = regions.length * CLIENTS_PER_REGION;
  return Math.max(50, Math.ceil((clients * 1000) / 70 / 50) * 50);
}

function trafficTable(): string[] {
  const rows = [
    "| regions | kind | gap per client (ms) | changes / s | batch RPCs / change | batch bytes / change | anti-entropy RPCs / s (messages / s: syncs + diffs) | anti-entropy bytes / s | all messages / change | all bytes / change | naive messages / change | naive bytes / change | Halo / naive: messages, bytes | delivery − one-way p50 / p99 (ms) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const regions of REGION_SETS) {
    const runs: Array<[string, number, number]> = [
      ["edits", 1, TRAFFIC_RATES[0] as number],
      ["edits", 1, TRAFFIC_RATES[1] as number],
      ["cursors", 0, TRAFFIC_RATES[0] as number],
      ["cursors", 0, busyCursorGap(regions)],
    ];
    for (const [label, edits, every] of runs) {
      // One seed: traffic hardly varies between seeds, and the busy runs are the costly ones.
      const [run] = overSeeds(
        { regions, durationMs: WINDOW_MS, changeEveryMs: every, edits },
        7_000 + 10 * regions.length + every,
        1,
      );
      if (!run) continue;
      const changes = run.changes.update + run.changes.awareness;
      const seconds = run.windowMs / 1000;
      const messages = run.batch.messages + run.antiEntropy.messages;
      const bytes = run.batch.bytes + run.antiEntropy.bytes;
      const excess = run.deliveries.map((d) => d.ms - oneWay(d.origin, d.target));
      SUMMARY.traffic.push({
        regions: regions.length,
        label,
        every,
        messages: messages / run.naive.messages,
        bytes: bytes / run.naive.bytes,
        batchCalls: run.batch.calls / changes,
        syncsPerSecond: run.syncMessages / seconds,
      });
      rows.push(
        `| ${regions.length} | ${label} | ${every} | ${fmt(changes / seconds, 1)} | ${fmt(run.batch.calls / changes, 2)} | ${fmt(run.batch.bytes / changes)} | ${fmt(run.antiEntropy.calls / seconds, 1)} (${fmt(run.syncMessages / seconds, 1)} + ${fmt(run.repairMessages / seconds, 1)}) | ${fmt(run.antiEntropy.bytes / seconds)} | ${fmt(messages / changes, 2)} | ${fmt(bytes / changes)} | ${fmt(run.naive.messages / changes, 2)} | ${fmt(run.naive.bytes / changes)} | ${fmt(messages / run.naive.messages, 2)}, ${fmt(bytes / run.naive.bytes, 2)} | ${fmt(quantile(excess, 0.5), 1)} / ${fmt(quantile(excess, 0.99), 1)} |`,
      );
    }
  }
  return rows;
}

// 3. With loss.

function lossTable(): string[] {
  const rows = [
    `| regions | loss | changes | edit p50 / p99 / max (ms) | cursor p50 / p99 / max (ms) | delivery − one-way p50 / p99 (ms) | later than one-way + ${BATCH_MS + GOAL_SLACK_MS} ms: edits, cursors | unfinished changes | cursor states overtaken |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const regions of REGION_SETS) {
    for (const loss of LOSSES) {
      const runs = overSeeds(
        {
          regions,
          durationMs: WINDOW_MS,
          changeEveryMs: CHANGE_EVERY_MS,
          edits: 0.5,
          faults: { loss, duplicate: 0, jitter: 0 },
        },
        20_000 + 100 * regions.length + Math.round(loss * 1000),
      );
      const deliveries = runs.flatMap((r) => r.deliveries);
      const of = (kind: Kind) => deliveries.filter((d) => d.kind === kind).map((d) => d.ms);
      const cell = (values: number[]) =>
        `${fmt(quantile(values, 0.5))} / ${fmt(quantile(values, 0.99))} / ${fmt(Math.max(...values))}`;
      const excess = deliveries.map((d) => d.ms - oneWay(d.origin, d.target));
      const late = (kind: Kind) => {
        const all = deliveries.filter((d) => d.kind === kind);
        const over = all.filter(
          (d) => d.ms - oneWay(d.origin, d.target) > BATCH_MS + GOAL_SLACK_MS,
        );
        return pct(over.length, all.length, 2);
      };
      const changes = sum(runs.map((r) => r.changes.update + r.changes.awareness));
      const unfinished = sum(runs.map((r) => r.unfinished));
      const overtaken = sum(runs.map((r) => r.overtaken));
      SUMMARY.loss.push({
        regions: regions.length,
        loss,
        editP99: quantile(of("update"), 0.99),
        cursorP99: quantile(of("awareness"), 0.99),
        lateEdits: late("update"),
        lateCursors: late("awareness"),
        unfinished,
      });
      rows.push(
        `| ${regions.length} | ${loss * 100}% | ${changes} | ${cell(of("update"))} | ${cell(of("awareness"))} | ${fmt(quantile(excess, 0.5), 1)} / ${fmt(quantile(excess, 0.99), 1)} | ${late("update")}, ${late("awareness")} | ${unfinished} | ${overtaken} |`,
      );
    }
  }
  return rows;
}

// 4. Repair after a partition heals.

/**
 * The simulator's convergence check (`disagreements`), split in two: every live replica has the
 * same document and every connected client its replica's text (`documents`); every live replica
 * has the same members and every client exactly its replica's present members (`presence`).
 */
function agreement(
  cluster: ReplicationCluster,
  room: string,
): { documents: boolean; presence: boolean } {
  const found = disagreements(cluster, room);
  const blocked = found.some((d) => d.kind === "replica");
  return {
    documents: !blocked && !found.some((d) => d.kind === "document"),
    presence: !blocked && !found.some((d) => d.kind === "presence"),
  };
}

interface RepairResult {
  victim: string;
  home: boolean;
  /** Deaths declared during the partition (either side declaring the other dead). */
  deaths: number;
  /** Clients keep typing after the heal: virtual ms until every client holds everything typed before it. */
  typingMs: number | undefined;
  /** Clients stop at the heal: virtual ms until the membership tables agree, documents agree, and everything agrees. */
  membershipMs: number | undefined;
  documentsMs: number | undefined;
  allMs: number | undefined;
  /** Tokens typed while connected that a converged replica lacks. */
  lost: number;
}

/** The bound on every wait after the heal. */
const REPAIR_BOUND_MS = 120_000;

/**
 * One region cut from the others for `partitionMs` while every client types and moves its
 * cursor; then the heal, and either the clients stop (`quiet`: the clock runs until the sim
 * test's convergence check holds) or they keep on (until every client holds everything any
 * client had typed by the heal).
 */
function partitionRun(
  seed: number,
  regions: readonly string[],
  partitionMs: number,
  quiet: boolean,
): Omit<RepairResult, "typingMs" | "membershipMs" | "documentsMs" | "allMs"> & {
  ms: number | undefined;
  membershipMs?: number;
  documentsMs?: number;
} {
  const cluster = new ReplicationCluster({ seed, regions, rtt: regionRtt });
  try {
    cluster.start();
    const room = "bench:partition";
    const random = cluster.random.fork("partition");
    for (const region of regions) {
      for (let i = 0; i < CLIENTS_PER_REGION; i++) {
        const client = cluster.addClient(room, `${region}-${i}`, { name: `${region}-${i}` });
        cluster.connect(client, region);
      }
    }
    cluster.runFor(2 * cluster.timings.antiEntropyMs);
    const clients = cluster.connectedClients(room);
    const rate = clients.length / CHANGE_EVERY_MS;
    let n = 0;
    const change = () => {
      n += 1;
      randomChange(cluster, random.pick(clients), n, random);
    };
    /** Changes at exponential gaps until `done` holds (checked after every event) or `ms` pass. */
    const act = (ms: number, done: () => boolean = () => false): number | undefined => {
      const start = cluster.now;
      for (;;) {
        const gap = -Math.log(1 - random.next()) / rate;
        const left = start + ms - cluster.now;
        if (cluster.runUntil(done, Math.min(gap, left)) !== undefined) return cluster.now - start;
        if (gap >= left) return undefined;
        change();
      }
    };
    // A random phase: the heal falls anywhere in the replicas' anti-entropy period.
    act(10_000 + random.between(0, ANTI_ENTROPY_MS));
    const victim = regions[seed % regions.length] as string;
    const others = regions.filter((r) => r !== victim);
    const home = cluster.shard(victim).links.get(room)?.home === victim;
    const from = cluster.membership.transitions.length;
    cluster.partition([victim], others);
    act(partitionMs);
    const deaths = cluster.membership.transitions.slice(from).filter((t) => t.to === "dead").length;
    cluster.heal();
    const healedAt = cluster.now;
    let ms: number | undefined;
    let membershipMs: number | undefined;
    let documentsMs: number | undefined;
    if (quiet) {
      ms = cluster.runUntil(() => {
        if (!cluster.membership.converged()) return false;
        membershipMs ??= cluster.now - healedAt;
        const { documents, presence } = agreement(cluster, room);
        if (documents) documentsMs ??= cluster.now - healedAt;
        return documents && presence;
      }, REPAIR_BOUND_MS);
    } else {
      // Everything typed by the heal, by client: each client must come to hold all of it.
      const typed = new Map<number, number>();
      for (const client of clients)
        for (const [id, clock] of Y.decodeStateVector(Y.encodeStateVector(client.stock.doc)))
          typed.set(id, Math.max(clock, typed.get(id) ?? 0));
      ms = act(REPAIR_BOUND_MS, () =>
        clients.every((c) =>
          [...typed].every(([id, clock]) => Y.getState(c.stock.doc.store, id) >= clock),
        ),
      );
    }
    // Nothing typed while connected is lost.
    const texts = cluster.liveReplicas(room, false).map(({ replica }) => replicaText(replica));
    const lost = quiet
      ? clients
          .flatMap((c) => c.applied)
          .filter((token) => texts.some((text) => !text.includes(token))).length
      : 0;
    return {
      victim,
      home,
      deaths,
      ms,
      lost,
      ...(membershipMs === undefined ? {} : { membershipMs }),
      ...(documentsMs === undefined ? {} : { documentsMs }),
    };
  } finally {
    cluster.destroy();
  }
}

function partitionRepair(
  seed: number,
  regions: readonly string[],
  partitionMs: number,
): RepairResult {
  const typing = partitionRun(seed, regions, partitionMs, false);
  const quiet = partitionRun(seed, regions, partitionMs, true);
  return {
    victim: quiet.victim,
    home: quiet.home,
    deaths: quiet.deaths,
    typingMs: typing.ms,
    membershipMs: quiet.membershipMs,
    documentsMs: quiet.documentsMs,
    allMs: quiet.ms,
    lost: quiet.lost,
  };
}

function repairTable(): string[] {
  const rows = [
    `| regions | cut | seeds | seeds with a death declared in the cut | typing goes on: every client has what was typed by the heal, p50 / max (s) | clients stop at the heal: membership tables agree, p50 / max (s) | clients stop: documents agree, p50 / max (s) | clients stop: everything agrees, p50 / max (s) | not converged within ${REPAIR_BOUND_MS / 1000} s | tokens lost |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  const details: string[] = [];
  for (const partitionMs of PARTITIONS_MS) {
    for (const regions of REGION_SETS) {
      const results: RepairResult[] = [];
      const base = 40_000 + partitionMs / 100 + 10 * regions.length;
      for (let s = 0; s < SEEDS; s++) results.push(partitionRepair(base + s, regions, partitionMs));
      const seconds = (ms: number | undefined) => (ms === undefined ? [] : [ms / 1000]);
      const cell = (values: number[]) =>
        `${fmt(quantile(values, 0.5), 2)} / ${fmt(Math.max(...values), 2)}`;
      const typing = results.flatMap((r) => seconds(r.typingMs));
      const tables = results.flatMap((r) => seconds(r.membershipMs));
      const docs = results.flatMap((r) => seconds(r.documentsMs));
      const all = results.flatMap((r) => seconds(r.allMs));
      const deaths = results.filter((r) => r.deaths > 0).length;
      const failed = results.filter(
        (r) => r.allMs === undefined || r.typingMs === undefined,
      ).length;
      SUMMARY.repair.push({
        regions: regions.length,
        partitionMs,
        typingP50: quantile(typing, 0.5),
        typingMax: Math.max(...typing),
        p50: quantile(all, 0.5),
        max: Math.max(...all),
        deaths,
        seeds: results.length,
        failed,
      });
      rows.push(
        `| ${regions.length} | ${partitionMs / 1000} s | ${results.length} | ${deaths} | ${cell(typing)} | ${cell(tables)} | ${cell(docs)} | ${cell(all)} | ${failed} | ${sum(results.map((r) => r.lost))} |`,
      );
      details.push(
        `- ${regions.length} regions, ${partitionMs / 1000} s: ${results
          .map((r, i) => {
            const t = (ms: number | undefined) => fmt((ms ?? Number.NaN) / 1000, 2);
            return `seed ${base + i} cut ${r.victim}${r.home ? " (the home)" : ""} ${t(r.typingMs)} / ${t(r.membershipMs)} / ${t(r.documentsMs)} / ${t(r.allMs)}`;
          })
          .join("; ")}`,
      );
    }
  }
  return [
    ...rows,
    "",
    "Per seed (seconds after the heal: typing goes on / membership / documents / everything):",
    "",
    ...details,
  ];
}

// The summary.

function summary(): string {
  const latency = SUMMARY.latency
    .map(
      (l) =>
        `${l.met} of ${l.pairs} pairs with ${l.regions} regions (worst p50 / one-way ${fmt(l.worstRatio, 2)})`,
    )
    .join(" and ");
  const ratios = (label: string, sparse: boolean) =>
    SUMMARY.traffic
      .filter((t) => t.label === label && (t.every === TRAFFIC_RATES[0]) === sparse)
      .map((t) => `${fmt(t.messages, 2)}, ${fmt(t.bytes, 2)} (${t.regions} regions)`)
      .join("; ");
  const syncs = SUMMARY.traffic
    .filter((t) => t.label === "edits" && t.every === TRAFFIC_RATES[0])
    .map((t) => `${fmt(t.syncsPerSecond, 1)}/s with ${t.regions} regions`)
    .join(", ");
  const loss = SUMMARY.loss
    .filter((l) => l.loss > 0)
    .map(
      (l) =>
        `${l.loss * 100}% loss, ${l.regions} regions: edit p99 ${fmt(l.editP99)} ms, cursor p99 ${fmt(l.cursorP99)} ms`,
    )
    .join("; ");
  const unfinished = sum(SUMMARY.loss.map((l) => l.unfinished));
  const failed = sum(SUMMARY.repair.map((r) => r.failed));
  const typingMax = Math.max(...SUMMARY.repair.map((r) => r.typingMax));
  const quietMax = Math.max(...SUMMARY.repair.map((r) => r.max));
  const quietP50 = SUMMARY.repair.map((r) => fmt(r.p50, 1)).join(", ");
  return [
    `Without faults the median delivery to another region is its one-way latency: the goal (p50 ≤ one-way + ${BATCH_MS} + ${GOAL_SLACK_MS} ms) holds on ${latency}; a change after a quiet window leaves at once (the leading edge), and only those landing inside a window wait for its end (at most ${BATCH_MS} ms).`,
    `Per change, batches cost what the naive full-mesh relay costs when changes are sparse (one change per batch) and less when they are busy (a batch merges the window's changes); anti-entropy adds sync messages at a fixed rate (${syncs}), plus diffs that without loss only repeat changes in flight, so Halo ÷ naive (messages, bytes) is ${ratios("edits", true)} for sparse edits, ${ratios("edits", false)} for busy edits, ${ratios("cursors", true)} for sparse cursor moves and ${ratios("cursors", false)} for busy ones (the busy cursor rate is capped by the stock clients' awareness echo, see section 2).`,
    `Under loss the median stays at one-way latency and nothing was lost (${unfinished} changes unfinished ${TAIL_MS / 1000} s after the last one); the tail is the repair: ${loss}. A lost edit is repaired one round trip after a later update that builds on it arrives (gap repair) or at the next anti-entropy; a lost cursor record leaves no gap to notice, and waits for that client's next move or the next anti-entropy period.`,
    `After one region's cut heals, clients that keep typing hold everything typed before the heal within ${fmt(typingMax, 2)} s at most: the first update that builds on lost content triggers gap repair between its sender and its receiver, but content no later update builds on, and what a third region lacks, waits for the periodic anti-entropy (after a 30 s cut the region must also be taken back by membership); when everyone stops at the heal, nothing triggers a repair before the next periodic anti-entropy, so full convergence takes up to one period, counted from when membership takes the region back after a long cut (p50 ${quietP50} s by row, max ${fmt(quietMax, 2)} s, against a ${ANTI_ENTROPY_MS / 1000} s period)${failed > 0 ? `, and ${failed} runs never converged` : ""}.`,
  ].join(" ");
}

// The run.

const started = Date.now();
const command = `npx tsx bench/replication.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}`;
console.log("# Replication between regions (simulated, virtual time)\n");
console.log(`Command: \`${command}\`\n`);
console.log(
  `Settings: ${SEEDS} seeds per latency cell; ${CLIENTS_PER_REGION} stock clients per region in one room; ${WINDOW_MS / 1000} s measured per run after ${(2 * ANTI_ENTROPY_MS) / 1000} s of settling, then a ${TAIL_MS / 1000} s tail; changes half edits, half cursor moves, one per client every ${CHANGE_EVERY_MS} ms on average (exponential gaps) unless stated; shipped replication timings (batchMs ${BATCH_MS}, antiEntropyMs ${ANTI_ENTROPY_MS}, peerExpiryMs ${SIM_REPLICATION.peerExpiryMs}, gapRepairMs ${SIM_REPLICATION.gapRepairMs}, rpcTimeoutMs ${SIM_REPLICATION.rpcTimeoutMs}) and membership; RTT table of test/sim/latency.ts (one-way = RTT / 2); no jitter. A delivery is timed from the local apply until every client of the target region has the change (a cursor state: it or a later state of the same client).\n`,
);

console.log("## 1. Delivery latency against one-way latency (no faults)\n");
for (const regions of REGION_SETS) {
  console.log(`### ${regions.length} regions: ${regions.join(", ")}\n`);
  console.log(latencyTable(regions).join("\n"));
  console.log("");
}

console.log("## 2. Traffic between regions per change (steady state, no faults, 1 seed per row)\n");
console.log(
  `Batch traffic: the batches sent as a window closes, one RPC per peer region. Anti-entropy: syncs (an RPC whose answer is a sync) and the diff batches they bring (in the answer, or as an RPC after it); it runs every ${ANTI_ENTROPY_MS / 1000} s per active replica and peer whatever the change rate, so per change it shrinks as the rate grows. Without loss a diff can only repeat changes a batch carries too (still in flight, or waiting in a window). Messages: RPC requests and the answers that carry something. Bytes: binary fields at their length, the rest as JSON (\`wireBytes\`). Naive relay: every change to every other region as its own message (changes × (regions − 1)), carrying that change's own Yjs update or member record; it has no anti-entropy, so it never repairs a loss. Gossip (membership) traffic is apart and not counted. The busy cursor rate is lower than the busy edit rate on purpose: every stock y-websocket client sends back every awareness change it receives (the provider's awareness handler ignores the origin), so each socket carries about the room's whole awareness rate, and above limits.messagesPerSecond (${LIMITS_PER_SECOND}) the shard closes every client (at a 50 ms gap, 5 regions × ${CLIENTS_PER_REGION} clients make 100 cursor moves/s, and they were); the busy cursor runs hold the room near 70 moves/s.\n`,
);
console.log(trafficTable().join("\n"));

console.log(
  "\n## 3. With message loss (each RPC request and answer, and gossip, lost independently)\n",
);
console.log(lossTable().join("\n"));

console.log(
  `\n## 4. Repair after a partition heals (one region cut from the others for ${PARTITIONS_MS.map((ms) => ms / 1000).join(" s or ")} s while clients on both sides type and move cursors, the cut region rotating with the seed and the heal at a random phase of the anti-entropy period; clients stop at the heal; "everything" is the sim test's convergence check: membership tables, every live replica's document and members, every client's text and awareness)\n`,
);
console.log(repairTable().join("\n"));

console.log("\n## Anomalies\n");
console.log(
  ANOMALIES.length === 0
    ? "None (no client closed, no failed room, no message failing the RPC schema)."
    : ANOMALIES.slice(0, 20).join("\n"),
);

console.log("\n## Summary\n");
console.log(summary());
console.log(`\n(${((Date.now() - started) / 1000).toFixed(1)} s of real time)`);
