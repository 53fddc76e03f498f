/**
 * Region-membership figures from the deterministic simulator (test/sim): for 3 to 64 regions,
 * how many rounds a change takes to reach every table (against the log2 N bound), how long a
 * crash takes to be declared dead everywhere (against the configured bound), false deaths
 * and suspicions under message loss with one slow region, and gossip messages and bytes per
 * region per round. Side by side, the simplest possible baseline: every region sends its
 * heartbeat to every other region every round, and declares a region dead after the same
 * suspect + minimum suspicion time without one.
 *
 * Virtual time: the figures do not depend on this machine's speed. Run: npm run bench:membership
 */
import { membershipSchema } from "../src/config/config-schema";
import { deathDeclaredWithinMs } from "../src/membership/membership-node";
import { REAL_REGIONS, type RttMatrix, regionRtt, syntheticRegions } from "../test/sim/latency";
import { MembershipCluster } from "../test/sim/membership-cluster";
import { type LinkFaults, NO_FAULTS, SimNetwork } from "../test/sim/network";
import { SimRandom } from "../test/sim/random";
import { Scheduler } from "../test/sim/scheduler";

const settings = membershipSchema.parse({});
const ROUND = settings.gossipIntervalMs;
const SEEDS = Number(process.env.BENCH_SEEDS ?? 20);
const SIZES = [3, 5, 9, 16, 32, 64];

function shape(n: number, seed: number): { regions: string[]; rtt: RttMatrix } {
  return n <= REAL_REGIONS.length
    ? { regions: REAL_REGIONS.slice(0, n), rtt: regionRtt }
    : syntheticRegions(n, new SimRandom(seed).fork("shape"));
}

function settled(n: number, seed: number, faults: LinkFaults = NO_FAULTS): MembershipCluster {
  const { regions, rtt } = shape(n, seed);
  const cluster = new MembershipCluster({ seed, regions, settings, rtt, faults });
  cluster.startAll();
  const ok = cluster.runUntil(
    () =>
      cluster.up().length === n &&
      cluster.converged() &&
      regions.every((r) => cluster.allSee(r, "alive")),
    300_000,
  );
  if (ok === undefined) throw new Error(`n=${n} seed=${seed} did not settle`);
  return cluster;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const fmt = (x: number, digits = 1) => x.toFixed(digits);

/** The baseline: all-to-all heartbeats on the same simulated network. */
class AllToAll {
  readonly scheduler = new Scheduler();
  readonly network: SimNetwork;
  readonly lastHeard = new Map<string, Map<string, number>>();
  readonly dead = new Map<string, Set<string>>();
  readonly up = new Set<string>();
  readonly deathAfter = settings.suspectAfterMs + settings.suspicionMinMs;

  constructor(
    readonly regions: readonly string[],
    rtt: RttMatrix,
    seed: number,
    faults: LinkFaults = NO_FAULTS,
  ) {
    this.network = new SimNetwork(this.scheduler, new SimRandom(seed).fork("network"), rtt, faults);
    const phases = new SimRandom(seed).fork("phases");
    for (const region of regions) {
      this.up.add(region);
      this.lastHeard.set(region, new Map(regions.map((r) => [r, 0])));
      this.dead.set(region, new Set());
      this.scheduler.after(phases.between(0, ROUND), () => this.tick(region));
    }
  }

  tick(region: string): void {
    if (!this.up.has(region)) return;
    const now = this.scheduler.now;
    const heard = this.lastHeard.get(region) as Map<string, number>;
    for (const [other, at] of heard) {
      if (other !== region && now - at > this.deathAfter) this.dead.get(region)?.add(other);
    }
    for (const other of this.regions) {
      if (other === region) continue;
      this.network.send(region, other, { from: region, heartbeat: now }, () => {
        if (!this.up.has(other)) return;
        this.lastHeard.get(other)?.set(region, this.scheduler.now);
        this.dead.get(other)?.delete(region);
      });
    }
    this.scheduler.after(ROUND, () => this.tick(region));
  }
}

function convergence(): string[] {
  const rows = [
    "| regions | Halo rounds p50 / p95 / max | log2 N bound (2·⌈log2 N⌉+1) | baseline rounds (all-to-all) |",
    "| --- | --- | --- | --- |",
  ];
  for (const n of SIZES) {
    const rounds: number[] = [];
    const baseline: number[] = [];
    for (let s = 0; s < SEEDS; s++) {
      const seed = 1000 * n + s;
      const cluster = settled(n, seed);
      const region = cluster.random.pick(cluster.regions);
      cluster.drain(region);
      const took = cluster.runUntil(
        () => cluster.allSee(region, "left") && cluster.converged(),
        120_000,
      );
      if (took === undefined) throw new Error(`n=${n} seed=${seed}: drain did not converge`);
      rounds.push(took / ROUND);
      // The baseline tells everyone directly: one one-way trip after the next round.
      const { regions, rtt } = shape(n, seed);
      baseline.push((ROUND / 2 + Math.max(...regions.map((r) => rtt(region, r) / 2))) / ROUND);
    }
    const bound = 2 * Math.ceil(Math.log2(n)) + 1;
    rows.push(
      `| ${n} | ${fmt(quantile(rounds, 0.5))} / ${fmt(quantile(rounds, 0.95))} / ${fmt(Math.max(...rounds))} | ${bound} | ${fmt(quantile(baseline, 0.5))} |`,
    );
  }
  return rows;
}

function detection(): string[] {
  const rows = [
    "| regions | Halo: dead everywhere p50 / p95 / max (s) | configured bound (s) | baseline (s) |",
    "| --- | --- | --- | --- |",
  ];
  for (const n of SIZES) {
    const times: number[] = [];
    const baseline: number[] = [];
    for (let s = 0; s < SEEDS; s++) {
      const seed = 2000 * n + s;
      const cluster = settled(n, seed);
      const crashed = cluster.random.pick(cluster.regions);
      cluster.crash(crashed);
      const took = cluster.runUntil(() => cluster.allSee(crashed, "dead"), 600_000);
      if (took === undefined) throw new Error(`n=${n} seed=${seed}: crash not detected`);
      times.push(took / 1000);

      const { regions, rtt } = shape(n, seed);
      const all = new AllToAll(regions, rtt, seed);
      all.scheduler.runUntil(30_000);
      all.up.delete(crashed);
      const start = all.scheduler.now;
      const done = all.scheduler.runUntilTrue(
        () => regions.every((r) => r === crashed || all.dead.get(r)?.has(crashed)),
        start + 600_000,
      );
      baseline.push(((done ?? Number.NaN) - start) / 1000);
    }
    rows.push(
      `| ${n} | ${fmt(quantile(times, 0.5))} / ${fmt(quantile(times, 0.95))} / ${fmt(Math.max(...times))} | ${fmt(deathDeclaredWithinMs(settings, n) / 1000)} | ${fmt(quantile(baseline, 0.5))} |`,
    );
  }
  return rows;
}

function underLoss(): string[] {
  const rows = [
    "| loss | Halo false deaths | Halo false suspicions | baseline false deaths | Halo detection p50 (s) |",
    "| --- | --- | --- | --- | --- |",
  ];
  const n = 9;
  const minutes = 10;
  for (const loss of [0, 0.1, 0.2, 0.3]) {
    let deaths = 0;
    let suspicions = 0;
    let baselineDeaths = 0;
    const detect: number[] = [];
    for (let s = 0; s < SEEDS; s++) {
      const seed = 3000 + s + Math.round(loss * 100) * 100;
      const faults = { loss, duplicate: 0.05, jitter: 0.5 };
      const cluster = settled(n, seed, faults);
      const slow = cluster.random.pick(cluster.regions);
      cluster.makeSlow(slow, 600, 1);
      const from = cluster.transitions.length;
      cluster.runFor(minutes * 60_000);
      const window = cluster.transitions.slice(from);
      deaths += window.filter((t) => t.to === "dead").length;
      suspicions += window.filter((t) => t.to === "suspect").length;
      const crashed = cluster.random.pick(cluster.regions.filter((r) => r !== slow));
      cluster.crash(crashed);
      const took = cluster.runUntil(() => cluster.allSee(crashed, "dead"), 600_000);
      detect.push((took ?? Number.NaN) / 1000);

      const { regions, rtt } = shape(n, seed);
      const all = new AllToAll(regions, rtt, seed, faults);
      all.network.slow(slow, 600);
      all.scheduler.runUntil(minutes * 60_000);
      // A death the baseline ever declared (and maybe took back) is a false one: no one crashed.
      baselineDeaths += [...all.dead.values()].reduce((sum, set) => sum + set.size, 0);
    }
    rows.push(
      `| ${loss * 100}% | ${deaths} | ${suspicions} | ${baselineDeaths} | ${fmt(quantile(detect, 0.5))} |`,
    );
  }
  return rows;
}

/** One pair of regions cannot reach each other (a broken route) for 10 minutes; everyone is up. */
function cutLink(): string[] {
  const rows = [
    "| regions | Halo false deaths | baseline false deaths (each end declares the other dead) |",
    "| --- | --- | --- |",
  ];
  for (const n of [3, 9]) {
    let deaths = 0;
    let baselineDeaths = 0;
    for (let s = 0; s < SEEDS; s++) {
      const seed = 5000 + 100 * n + s;
      const cluster = settled(n, seed);
      const [a, b] = [cluster.regions[0] as string, cluster.regions[n - 1] as string];
      const from = cluster.transitions.length;
      cluster.network.partition([a], [b]);
      cluster.runFor(10 * 60_000);
      deaths += cluster.transitions.slice(from).filter((t) => t.to === "dead").length;

      const { regions, rtt } = shape(n, seed);
      const all = new AllToAll(regions, rtt, seed);
      all.scheduler.runUntil(10_000);
      all.network.partition([a], [b]);
      all.scheduler.runUntil(10 * 60_000);
      baselineDeaths += [...all.dead.values()].reduce((sum, set) => sum + set.size, 0);
    }
    rows.push(`| ${n} | ${deaths} | ${baselineDeaths} |`);
  }
  return rows;
}

function traffic(): string[] {
  const rows = [
    "| regions | Halo messages / region / round | Halo bytes / region / round | baseline messages | baseline bytes | bytes ratio (Halo / baseline) |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const n of SIZES) {
    const seed = 4000 + n;
    const cluster = settled(n, seed);
    const before = { ...cluster.network.stats };
    const span = 60_000;
    cluster.runFor(span);
    const rounds = (span / ROUND) * n;
    const messages = (cluster.network.stats.sent - before.sent) / rounds;
    const bytes = (cluster.network.stats.bytes - before.bytes) / rounds;

    const { regions, rtt } = shape(n, seed);
    const all = new AllToAll(regions, rtt, seed);
    all.scheduler.runUntil(10_000);
    const b0 = { ...all.network.stats };
    all.scheduler.runUntil(10_000 + span);
    const bMessages = (all.network.stats.sent - b0.sent) / rounds;
    const bBytes = (all.network.stats.bytes - b0.bytes) / rounds;
    rows.push(
      `| ${n} | ${fmt(messages)} | ${Math.round(bytes)} | ${fmt(bMessages)} | ${Math.round(bBytes)} | ${fmt(bytes / bBytes, 2)} |`,
    );
  }
  return rows;
}

const started = Date.now();
console.log(
  `# Region membership (simulated; ${SEEDS} seeds per cell; defaults: round ${ROUND} ms, fanout ${settings.fanout}, suspect after ${settings.suspectAfterMs} ms, suspicion ${settings.suspicionMinMs}-${settings.suspicionMaxMs} ms)\n`,
);
console.log("## Rounds for a change (a drain) to reach every table\n");
console.log(convergence().join("\n"));
console.log("\n## Time until a crashed region is dead in every table\n");
console.log(detection().join("\n"));
console.log(
  `\n## 9 regions, one slow (+600 ms each way, rounds up to 1 late), 10 minutes, with loss (also 5% duplication, jitter 0.5)\n`,
);
console.log(underLoss().join("\n"));
console.log("\n## One link cut for 10 minutes, every region up\n");
console.log(cutLink().join("\n"));
console.log("\n## Gossip traffic in steady state (JSON bytes as a stand-in for RPC payloads)\n");
console.log(traffic().join("\n"));
console.log(`\n(${((Date.now() - started) / 1000).toFixed(1)} s of real time)`);
