import { describe, expect, it } from "vitest";
import { membershipSchema } from "../../src/config/config-schema";
import { deathDeclaredWithinMs } from "../../src/membership/membership-node";
import { sizeScale } from "../../src/membership/suspicion";
import { REAL_REGIONS, regionRtt, syntheticRegions } from "./latency";
import { MembershipCluster } from "./membership-cluster";
import { SimRandom } from "./random";
import { forEachSeed, SIM_TEST_TIMEOUT_MS } from "./seeds";

/** The production defaults: the simulator checks the configuration that ships. */
const settings = membershipSchema.parse({});
const ROUND = settings.gossipIntervalMs;
/** The longest one-way trip in the RTT table, plus a round for the tick that sends it. */
const SLACK = 400 + ROUND;

/** A cluster of 3-9 real regions (or, now and then, 16 or 32 synthetic ones), started and settled. */
function settledCluster(
  seed: number,
  options: {
    maxRegions?: number;
    synthetic?: boolean;
    faults?: MembershipCluster["options"]["faults"];
  } = {},
): MembershipCluster {
  const random = new SimRandom(seed).fork("shape");
  const useSynthetic = options.synthetic !== false && random.chance(0.2);
  const { regions, rtt } = useSynthetic
    ? syntheticRegions(random.pick([16, 32]), random)
    : {
        regions: REAL_REGIONS.slice(0, 3 + random.int((options.maxRegions ?? 9) - 2)),
        rtt: regionRtt,
      };
  const cluster = new MembershipCluster({
    seed,
    regions,
    settings,
    rtt,
    ...(options.faults ? { faults: options.faults } : {}),
  });
  cluster.startAll();
  const settled = cluster.runUntil(
    () =>
      cluster.up().length === regions.length &&
      cluster.converged() &&
      regions.every((r) => cluster.allSee(r, "alive")),
    120_000,
  );
  expect(settled, "the cluster settles after start").toBeDefined();
  return cluster;
}

function logRounds(regions: number): number {
  return Math.ceil(Math.log2(regions));
}

describe("membership simulator: the properties of issue 5 over many seeds", {
  timeout: SIM_TEST_TIMEOUT_MS,
}, () => {
  it("a change reaches every alive region's table within O(log N) rounds", () => {
    forEachSeed("log-rounds convergence", (seed) => {
      const cluster = settledCluster(seed);
      cluster.runFor(cluster.random.between(0, ROUND));
      const region = cluster.random.pick(cluster.regions);
      cluster.drain(region);
      const took = cluster.runUntil(
        () => cluster.allSee(region, "left") && cluster.converged(),
        60_000,
      );
      const n = cluster.regions.length;
      expect(took, "the drain reaches everyone").toBeDefined();
      expect(took).toBeLessThanOrEqual((2 * logRounds(n) + 1) * ROUND + SLACK);
    });
  });

  it("a crashed region is declared dead by every other region within the configured bound, and no one else is", () => {
    forEachSeed("crash detection", (seed) => {
      const cluster = settledCluster(seed);
      const crashed = cluster.random.pick(cluster.regions);
      const crashedAt = cluster.now;
      cluster.crash(crashed);
      const n = cluster.regions.length;
      const bound = deathDeclaredWithinMs(settings, n);
      const took = cluster.runUntil(() => cluster.allSee(crashed, "dead"), bound);
      expect(took, `dead everywhere within ${bound} ms`).toBeDefined();
      // Every survivor doubts the crashed region on its own, so their reports must unite and
      // the suspicion wait only its minimum (a lone accuser would wait suspicionMaxMs).
      const confirmed =
        settings.suspectAfterMs * sizeScale(n) +
        settings.suspicionMinMs +
        (logRounds(n) + 3) * ROUND;
      expect(took, "the survivors' reports united").toBeLessThanOrEqual(confirmed);
      const collateral = cluster.transitions.filter(
        (t) => t.at >= crashedAt && t.region !== crashed && t.to !== "alive",
      );
      expectNone(collateral, "regions other than the crashed one suspected");
    });
  });

  it("with 20% message loss and one slow region, no alive region is ever declared dead", () => {
    forEachSeed(
      "no false deaths under loss",
      (seed) => {
        const cluster = settledCluster(seed, {
          synthetic: false,
          faults: { loss: 0.2, duplicate: 0.05, jitter: 0.5 },
        });
        const slow = cluster.random.pick(cluster.regions);
        // Every message to or from it takes 600 ms longer each way (its exchanges miss the
        // ack timeout), and its rounds come up to a whole round late.
        cluster.makeSlow(slow, 600, 1);
        cluster.runFor(10 * 60_000);
        expectNone(
          cluster.transitions.filter((t) => t.to === "dead"),
          "false deaths",
        );
        expect(cluster.up()).toHaveLength(cluster.regions.length);
      },
      { count: 10 },
    );
  });

  it("a partition longer than the death bound heals without flapping", () => {
    forEachSeed("partition heal", (seed) => {
      const cluster = settledCluster(seed, { maxRegions: 9, synthetic: false });
      const regions = [...cluster.regions];
      const cut = 1 + cluster.random.int(regions.length - 1);
      const sideA = regions.slice(0, cut);
      const sideB = regions.slice(cut);
      const [larger, smaller] = sideA.length >= sideB.length ? [sideA, sideB] : [sideB, sideA];
      const partitionedAt = cluster.now;
      cluster.network.partition(sideA, sideB);
      cluster.runFor(deathDeclaredWithinMs(settings, regions.length) + 5 * ROUND);
      // The larger side (two or more regions) has given the other up: that is the point of
      // failure detection. The smaller side gets most of its exchanges unanswered, so its local
      // health slows its accusations (Lifeguard): it is more likely the side cut off.
      if (larger.length >= 2) {
        for (const r of smaller) expect(cluster.allSee(r, "dead", larger), `${r} dead`).toBe(true);
      }

      cluster.network.heal();
      const healedAt = cluster.now;
      const took = cluster.runUntil(
        () => cluster.converged() && regions.every((r) => cluster.allSee(r, "alive")),
        (2 * logRounds(regions.length) + 6) * ROUND + SLACK,
      );
      expect(took, "everyone alive again").toBeDefined();
      const convergedAt = cluster.now;
      cluster.runFor(60_000);

      // No one is declared dead once the heal can be heard (a round and a trip after it; a
      // verdict reached in the partition may land in between, and is refuted at once).
      expectNone(
        cluster.transitions.filter((t) => t.at > healedAt + SLACK && t.to === "dead"),
        "deaths after the heal",
      );
      // The larger side never doubted its own members: the other side's verdicts about them,
      // arriving with the heal, do not outweigh first-hand heartbeats.
      expectNone(
        cluster.transitions.filter(
          (t) =>
            t.at > partitionedAt &&
            larger.includes(t.observer) &&
            larger.includes(t.region) &&
            t.to !== "alive",
        ),
        "the larger side doubting itself",
      );
      // Once converged, nothing changes.
      expectNone(
        cluster.transitions.filter((t) => t.at > convergedAt),
        "changes after convergence",
      );
    });
  });

  it("a partition shorter than suspectAfterMs changes nobody's status", () => {
    forEachSeed("brief partition", (seed) => {
      const cluster = settledCluster(seed, { synthetic: false });
      const regions = [...cluster.regions];
      const cut = 1 + cluster.random.int(regions.length - 1);
      const start = cluster.now;
      cluster.network.partition(regions.slice(0, cut), regions.slice(cut));
      cluster.runFor(settings.suspectAfterMs / 2);
      cluster.network.heal();
      cluster.runFor(60_000);
      // (`>`: the transition that completed the settling happened at `start` itself.)
      const changes = cluster.transitions.filter((t) => t.at > start);
      expectNone(changes, "status changes");
    });
  });

  it("a drained region stays drained through loss, partitions, crashes and restarts", () => {
    forEachSeed("drain is sticky", (seed) => {
      const cluster = settledCluster(seed, {
        synthetic: false,
        faults: { loss: 0.1, duplicate: 0.1, jitter: 1 },
      });
      const regions = [...cluster.regions];
      const drained = cluster.random.pick(regions);
      cluster.drain(drained);
      chaos(cluster, 3 * 60_000);
      healEverything(cluster);
      const took = cluster.runUntil(
        () =>
          cluster.converged() &&
          cluster.allSee(drained, "left") &&
          regions.every((r) => r === drained || cluster.allSee(r, "alive")),
        deathDeclaredWithinMs(settings, regions.length) * 2,
      );
      expect(took, "converged after the faults heal").toBeDefined();
      // Once an observer has seen the drain, it never sees the region as anything but left.
      const firstLeft = new Map<string, number>();
      for (const t of cluster.transitions) {
        if (t.region !== drained) continue;
        const seen = firstLeft.get(t.observer);
        if (seen !== undefined) expect(t.to).toBe("left");
        else if (t.to === "left") firstLeft.set(t.observer, t.at);
      }
    });
  });

  it("after random faults heal, every table converges: the up regions alive, the drained ones left", () => {
    forEachSeed("chaos convergence", (seed) => {
      const cluster = settledCluster(seed, {
        synthetic: false,
        faults: { loss: 0.15, duplicate: 0.1, jitter: 1 },
      });
      chaos(cluster, 4 * 60_000, { drains: true });
      healEverything(cluster);
      const regions = [...cluster.regions];
      const took = cluster.runUntil(
        () =>
          cluster.converged() &&
          regions.every((r) => cluster.allSee(r, cluster.node(r)?.drained ? "left" : "alive")),
        deathDeclaredWithinMs(settings, regions.length) * 2,
      );
      expect(took, "converged after the faults heal").toBeDefined();
    });
  });
});

function describeTransition(t: MembershipCluster["transitions"][number]): string {
  return `${Math.round(t.at)} ms: ${t.observer} sees ${t.region} ${t.from} -> ${t.to} (incarnation ${t.incarnation})`;
}

/** Fails with every transition spelled out (assertion messages would truncate them). */
function expectNone(transitions: MembershipCluster["transitions"], what: string): void {
  if (transitions.length > 0) {
    throw new Error(`${what}:\n${transitions.map(describeTransition).join("\n")}`);
  }
}

/** Random crashes, restarts, partitions (and, if asked, drains and undrains) for `durationMs`. */
function chaos(
  cluster: MembershipCluster,
  durationMs: number,
  options: { drains?: boolean } = {},
): void {
  const random = cluster.random.fork("chaos");
  const end = cluster.now + durationMs;
  while (cluster.now < end) {
    cluster.runFor(random.between(500, 15_000));
    const region = random.pick(cluster.regions);
    const roll = random.next();
    if (roll < 0.3) {
      if (cluster.isUp(region)) cluster.crash(region);
      else cluster.start(region);
    } else if (roll < 0.55) {
      const shuffled = [...cluster.regions].sort(() => random.next() - 0.5);
      const cut = 1 + random.int(shuffled.length - 1);
      cluster.network.partition(shuffled.slice(0, cut), shuffled.slice(cut));
    } else if (roll < 0.8) {
      cluster.network.heal();
    } else if (options.drains && cluster.isUp(region)) {
      if (cluster.node(region)?.drained) cluster.undrain(region);
      else cluster.drain(region);
    }
  }
}

function healEverything(cluster: MembershipCluster): void {
  cluster.network.heal();
  cluster.network.faults = { loss: 0, duplicate: 0, jitter: 0 };
  for (const region of cluster.regions) if (!cluster.isUp(region)) cluster.start(region);
}
