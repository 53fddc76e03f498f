import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  deathDeclaredWithinMs,
  type GossipMessage,
  type GossipSettings,
  MembershipNode,
  type Outgoing,
  type PersistedMembership,
  type StatusTransition,
} from "../../src/membership/membership-node";
import {
  type Beat,
  compareVersions,
  deltaFor,
  digestOf,
  gainsFrom,
  MEMBER_STATUSES,
  type MemberStatus,
  mergeEntry,
  type RegionEntry,
  statusRank,
  UNKNOWN_HEARTBEAT,
} from "../../src/membership/region-entry";
import { LocalHealth, sizeScale, suspicionTimeoutMs } from "../../src/membership/suspicion";
import { TEST_GOSSIP } from "./gossip-settings";

const T0 = 1_700_000_000_000;
/** A region started without stored state takes its incarnation from the clock, in seconds. */
const FRESH = Math.floor(T0 / 1000);

const SETTINGS: GossipSettings = TEST_GOSSIP;

const half = () => 0.5;

/** A seeded linear congruential generator in [0, 1). */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

function entry(over: Partial<RegionEntry> = {}): RegionEntry {
  return {
    region: "r",
    status: "alive",
    incarnation: 0,
    heartbeat: 0,
    contentAt: 0,
    shards: 2,
    shardEpoch: 0,
    previousShards: [],
    load: { connections: 0, rooms: 0 },
    hotShards: [],
    changedAt: T0,
    accusers: [],
    ...over,
  };
}

function ack2(from: string, entries: RegionEntry[] = [], beats: Beat[] = []): GossipMessage {
  return { kind: "ack2", from, entries, beats };
}

/** An ack that only answers (nothing to send, nothing wanted). */
function emptyAck(from: string, nonce: number): GossipMessage {
  return { kind: "ack", from, nonce, entries: [], beats: [], want: [] };
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  const out: T[][] = [];
  items.forEach((item, i) => {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const perm of permutations(rest)) out.push([item, ...perm]);
  });
  return out;
}

function fold(entries: readonly RegionEntry[]): RegionEntry {
  const [first, ...rest] = entries;
  return rest.reduce((acc, e) => mergeEntry(acc, e), first as RegionEntry);
}

/**
 * Entries about one region whose figures are a function of (incarnation, heartbeat), as the
 * owner guarantees ("one version, one content"), and whose accusers are sorted and distinct, as
 * every code path that writes them produces.
 */
const entryArb: fc.Arbitrary<RegionEntry> = fc
  .record({
    status: fc.constantFrom(...MEMBER_STATUSES),
    incarnation: fc.integer({ min: 0, max: 2 }),
    heartbeat: fc.integer({ min: 0, max: 3 }),
    changedAt: fc.integer({ min: 0, max: 3 }),
    accusers: fc.subarray(["a", "b", "c", "d"]),
  })
  .map(({ status, incarnation, heartbeat, changedAt, accusers }) =>
    entry({
      status,
      incarnation,
      heartbeat,
      changedAt: T0 + changedAt,
      accusers: status === "suspect" || status === "dead" ? accusers : [],
      // Content changes at even heartbeats; the figures follow the content.
      contentAt: heartbeat - (heartbeat % 2),
      shards: 1 + incarnation * 10 + (heartbeat - (heartbeat % 2)),
      load: { connections: (heartbeat - (heartbeat % 2)) * 7 + incarnation, rooms: incarnation },
    }),
  );

describe("mergeEntry: the ordering", () => {
  it("a higher incarnation wins whatever either status is", () => {
    for (const low of MEMBER_STATUSES) {
      for (const high of MEMBER_STATUSES) {
        const older = entry({
          status: low,
          incarnation: 1,
          heartbeat: 50,
          accusers: low === "suspect" || low === "dead" ? ["x"] : [],
        });
        const newer = entry({ status: high, incarnation: 2, heartbeat: 3, changedAt: T0 + 9 });
        expect(mergeEntry(older, newer)).toBe(newer);
        expect(mergeEntry(newer, older)).toBe(newer);
      }
    }
  });

  it("at one incarnation left > dead > suspect > alive, whatever the heartbeats", () => {
    expect(MEMBER_STATUSES.map(statusRank)).toEqual([0, 1, 2, 3]);
    for (const a of MEMBER_STATUSES) {
      for (const b of MEMBER_STATUSES) {
        if (statusRank(a) <= statusRank(b)) continue;
        // `a` outranks `b`; give `b` the much later heartbeat and the richer figures.
        const strong = entry({ status: a, incarnation: 4, heartbeat: 1 });
        const weak = entry({
          status: b,
          incarnation: 4,
          heartbeat: 99,
          shards: 9,
          load: { connections: 5, rooms: 5 },
        });
        expect(mergeEntry(strong, weak)).toBe(strong);
        expect(mergeEntry(weak, strong)).toBe(strong);
      }
    }
    const order: MemberStatus[] = ["alive", "suspect", "dead", "left"];
    const winner = fold(order.map((status) => entry({ status, incarnation: 1 })));
    expect(winner.status).toBe("left");
  });

  it("at one incarnation and status the later heartbeat brings its figures; changedAt keeps the earliest", () => {
    const local = entry({
      heartbeat: 3,
      shards: 2,
      load: { connections: 10, rooms: 1 },
      changedAt: T0 + 5,
    });
    const incoming = entry({
      heartbeat: 7,
      shards: 4,
      load: { connections: 40, rooms: 6 },
      changedAt: T0 + 8,
    });
    const merged = mergeEntry(local, incoming);
    expect(merged).toEqual({ ...incoming, changedAt: T0 + 5 });
    expect(mergeEntry(incoming, local)).toEqual(merged);
    // An older heartbeat changes nothing: the local entry itself comes back.
    const stale = entry({ heartbeat: 1, shards: 9, changedAt: T0 + 5 });
    expect(mergeEntry(local, stale)).toBe(local);
    expect(mergeEntry(local, local)).toBe(local);
    expect(mergeEntry(local, { ...local })).toBe(local);
  });

  it("at an equal version the accusers are united and sorted", () => {
    const mine = entry({ status: "suspect", heartbeat: 5, accusers: ["b", "d"] });
    const theirs = entry({ status: "suspect", heartbeat: 5, accusers: ["a", "c", "d"] });
    expect(mergeEntry(mine, theirs).accusers).toEqual(["a", "b", "c", "d"]);
    expect(mergeEntry(theirs, mine).accusers).toEqual(["a", "b", "c", "d"]);
    // A subset adds nothing: the local entry (and its accusers array) comes back as is.
    const subset = entry({ status: "suspect", heartbeat: 5, accusers: ["d"] });
    expect(mergeEntry(mine, subset)).toBe(mine);
    // A later heartbeat at the same status still keeps the accusers of both.
    const later = entry({ status: "dead", heartbeat: 9, accusers: ["z"] });
    const earlier = entry({ status: "dead", heartbeat: 2, accusers: ["a"] });
    expect(mergeEntry(earlier, later)).toMatchObject({ heartbeat: 9, accusers: ["a", "z"] });
    // A different status does not unite: the winner's accusers stand alone.
    const dead = entry({ status: "dead", heartbeat: 1, accusers: ["q"] });
    expect(mergeEntry(mine, dead).accusers).toEqual(["q"]);
  });
});

describe("mergeEntry: a join", () => {
  const handMade: RegionEntry[] = [
    entry({ status: "alive", incarnation: 1, heartbeat: 9, shards: 3, changedAt: T0 + 1 }),
    entry({ status: "suspect", incarnation: 1, heartbeat: 4, accusers: ["b"], changedAt: T0 + 7 }),
    entry({
      status: "suspect",
      incarnation: 1,
      heartbeat: 6,
      accusers: ["a", "c"],
      changedAt: T0 + 3,
    }),
    entry({ status: "alive", incarnation: 0, heartbeat: 40, changedAt: T0 }),
    entry({ status: "suspect", incarnation: 1, heartbeat: 6, accusers: ["d"], changedAt: T0 + 5 }),
  ];

  it("every order of a hand-made set of entries gives the same result", () => {
    const results = permutations(handMade).map(fold);
    expect(results).toHaveLength(120);
    const expected = entry({
      status: "suspect",
      incarnation: 1,
      heartbeat: 6,
      accusers: ["a", "b", "c", "d"],
      changedAt: T0 + 3,
    });
    for (const result of results) expect(result).toEqual(expected);
  });

  it("duplicates change nothing", () => {
    const once = fold(handMade);
    expect(fold([...handMade, ...handMade])).toEqual(once);
    expect(fold([...handMade, once, handMade[2] as RegionEntry])).toEqual(once);
  });

  it("is commutative, associative and idempotent (property)", () => {
    fc.assert(
      fc.property(entryArb, entryArb, entryArb, (a, b, c) => {
        expect(mergeEntry(a, a)).toBe(a);
        expect(mergeEntry(a, b)).toEqual(mergeEntry(b, a));
        expect(mergeEntry(mergeEntry(a, b), c)).toEqual(mergeEntry(a, mergeEntry(b, c)));
        // Absorption: merging in something already merged changes nothing.
        const ab = mergeEntry(a, b);
        expect(mergeEntry(ab, a)).toEqual(ab);
        expect(mergeEntry(ab, b)).toEqual(ab);
      }),
      { numRuns: 2000 },
    );
  });

  it("any order of a random multiset gives the same table (property)", () => {
    fc.assert(
      fc.property(
        fc
          .array(entryArb, { minLength: 1, maxLength: 6 })
          .chain((items) =>
            fc.tuple(fc.constant(items), fc.shuffledSubarray(items, { minLength: items.length })),
          ),
        ([items, shuffled]) => {
          expect(fold(shuffled)).toEqual(fold(items));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("digestOf and compareVersions", () => {
  it("a digest item is (region, incarnation, rank, heartbeat, accuser count, accuser print)", () => {
    const e = entry({ status: "dead", incarnation: 3, heartbeat: 12, accusers: ["a", "b"] });
    expect(digestOf(e).slice(0, 5)).toEqual(["r", 3, 2, 12, 2]);
    // The print tells equal-sized sets apart, and is the same for the same set.
    const same = entry({ status: "dead", incarnation: 3, heartbeat: 12, accusers: ["a", "b"] });
    const other = entry({ status: "dead", incarnation: 3, heartbeat: 12, accusers: ["a", "c"] });
    expect(digestOf(same)).toEqual(digestOf(e));
    expect(digestOf(other)).not.toEqual(digestOf(e));
  });

  it("gainsFrom: a holder gains from a newer version, or an equal one with other accusers", () => {
    const d = (over: Partial<RegionEntry>) => digestOf(entry({ status: "suspect", ...over }));
    expect(gainsFrom(d({ heartbeat: 1 }), d({ heartbeat: 2 }))).toBe(true);
    expect(gainsFrom(d({ heartbeat: 2 }), d({ heartbeat: 1 }))).toBe(false);
    expect(gainsFrom(d({ accusers: ["a"] }), d({ accusers: ["a"] }))).toBe(false);
    expect(gainsFrom(d({ accusers: ["a"] }), d({ accusers: ["b"] }))).toBe(true);
    expect(gainsFrom(d({ accusers: ["b"] }), d({ accusers: ["a"] }))).toBe(true);
    expect(gainsFrom(d({ accusers: ["a", "b"] }), d({ accusers: ["c"] }))).toBe(false);
  });

  it("orders incarnation, then rank, then heartbeat, then accusers", () => {
    const d = (over: Partial<RegionEntry>) => digestOf(entry(over));
    expect(
      compareVersions(d({ incarnation: 2 }), d({ incarnation: 1, status: "left" })),
    ).toBeGreaterThan(0);
    expect(compareVersions(d({ status: "suspect" }), d({ heartbeat: 99 }))).toBeGreaterThan(0);
    expect(compareVersions(d({ heartbeat: 5 }), d({ heartbeat: 6 }))).toBeLessThan(0);
    expect(
      compareVersions(
        d({ status: "suspect", accusers: ["a", "b"] }),
        d({ status: "suspect", accusers: ["c"] }),
      ),
    ).toBeGreaterThan(0);
    expect(
      compareVersions(
        d({ status: "suspect", accusers: ["a"] }),
        d({ status: "suspect", accusers: ["c"] }),
      ),
    ).toBe(0);
    // The region name is not part of the version.
    expect(compareVersions(d({ region: "x" }), d({ region: "y" }))).toBe(0);
  });

  it("agrees with the merge (property)", () => {
    fc.assert(
      fc.property(entryArb, entryArb, (a, b) => {
        const merged = mergeEntry(a, b);
        // The join is at least as new as either side.
        expect(compareVersions(digestOf(merged), digestOf(a))).toBeGreaterThanOrEqual(0);
        expect(compareVersions(digestOf(merged), digestOf(b))).toBeGreaterThanOrEqual(0);
        // What a digest says the holder gains from really changes the holder's entry...
        if (compareVersions(digestOf(b), digestOf(a)) > 0) {
          expect(mergeEntry(a, b)).not.toBe(a);
        }
        if (gainsFrom(digestOf(a), digestOf(b))) expect(mergeEntry(a, b)).not.toBe(a);
        // ...and when the merge keeps the local entry, there was nothing to gain.
        if (mergeEntry(a, b) === a) {
          expect(compareVersions(digestOf(b), digestOf(a))).toBeLessThanOrEqual(0);
          expect(gainsFrom(digestOf(a), digestOf(b))).toBe(false);
        }
        // After the merge, neither side has anything more to offer.
        expect(gainsFrom(digestOf(merged), digestOf(a))).toBe(false);
        expect(gainsFrom(digestOf(merged), digestOf(b))).toBe(false);
        // Where one side's version is strictly ahead on (incarnation, rank), it is the result's.
        const ahead = a.incarnation - b.incarnation || statusRank(a.status) - statusRank(b.status);
        if (ahead > 0) expect(digestOf(merged)).toEqual(digestOf(a));
        if (ahead < 0) expect(digestOf(merged)).toEqual(digestOf(b));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("suspicionTimeoutMs", () => {
  it("waits the maximum with no confirmations and the minimum at the expected number", () => {
    expect(suspicionTimeoutMs(0, 3, 200, 1000)).toBe(1000);
    expect(suspicionTimeoutMs(3, 3, 200, 1000)).toBe(200);
    expect(suspicionTimeoutMs(7, 3, 200, 1000)).toBe(200);
    // log(2)/log(4) = 0.5 of the way down.
    expect(suspicionTimeoutMs(1, 3, 200, 1000)).toBe(600);
    expect(suspicionTimeoutMs(2, 3, 200, 1000)).toBe(
      Math.floor(1000 - 800 * (Math.log(3) / Math.log(4))),
    );
  });

  it("is non-increasing in the confirmations and stays within [min, max] (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 0, max: 5_000 }),
        fc.integer({ min: 0, max: 50_000 }),
        (expected, minMs, extra) => {
          const maxMs = minMs + extra;
          let previous = Number.POSITIVE_INFINITY;
          for (let k = 0; k <= expected + 3; k++) {
            const t = suspicionTimeoutMs(k, expected, minMs, maxMs);
            expect(t).toBeLessThanOrEqual(previous);
            expect(t).toBeGreaterThanOrEqual(minMs);
            expect(t).toBeLessThanOrEqual(maxMs);
            previous = t;
          }
          expect(suspicionTimeoutMs(0, expected, minMs, maxMs)).toBe(maxMs);
          expect(suspicionTimeoutMs(expected, expected, minMs, maxMs)).toBe(minMs);
        },
      ),
    );
  });

  it("is the minimum when no one else could confirm (expected < 1)", () => {
    expect(suspicionTimeoutMs(0, 0, 200, 1000)).toBe(200);
    expect(suspicionTimeoutMs(0, 0.5, 200, 1000)).toBe(200);
    expect(suspicionTimeoutMs(0, -1, 200, 1000)).toBe(200);
  });
});

describe("sizeScale and LocalHealth", () => {
  it("sizeScale is 1 up to 10 members and log10 beyond", () => {
    for (const n of [-3, 0, 1, 2, 5, 10]) expect(sizeScale(n)).toBe(1);
    expect(sizeScale(100)).toBeCloseTo(2, 10);
    expect(sizeScale(1000)).toBeCloseTo(3, 10);
    expect(sizeScale(20)).toBeCloseTo(Math.log10(20), 10);
    let previous = 1;
    for (let n = 11; n <= 500; n++) {
      const s = sizeScale(n);
      expect(s).toBeGreaterThan(previous);
      previous = s;
    }
  });

  it("LocalHealth starts at 0 and stays within 0..max", () => {
    const health = new LocalHealth(3);
    expect(health.score).toBe(0);
    expect(health.multiplier).toBe(1);
    health.better();
    expect(health.score).toBe(0);
    for (let i = 0; i < 10; i++) health.worse();
    expect(health.score).toBe(3);
    expect(health.multiplier).toBe(4);
    health.better();
    expect(health.score).toBe(2);
    for (let i = 0; i < 10; i++) health.better();
    expect(health.score).toBe(0);
    expect(health.multiplier).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// MembershipNode, driven by hand.

type Observed = StatusTransition & { observer: string };

/** A few nodes on virtual time; messages are delivered synchronously, each reply back to its sender. */
class Cluster {
  readonly nodes = new Map<string, MembershipNode>();
  readonly transitions: Observed[] = [];
  /** Regions that neither tick nor answer (crashed). */
  readonly stopped = new Set<string>();
  /** Regions that answer messages but no longer tick (their heartbeat is stuck). */
  readonly frozen = new Set<string>();
  /** Links that drop everything in both directions. */
  readonly cut = new Set<string>();
  now = T0;

  constructor(
    readonly settings: GossipSettings = SETTINGS,
    readonly random: () => number = half,
  ) {}

  add(region: string, seeds: string[] = [], persisted?: PersistedMembership): MembershipNode {
    const node = MembershipNode.start(
      { region, shards: 2, seeds },
      this.settings,
      this.now,
      persisted,
      (t) => this.transitions.push({ ...t, observer: region }),
    );
    this.nodes.set(region, node);
    this.stopped.delete(region);
    return node;
  }

  node(region: string): MembershipNode {
    const node = this.nodes.get(region);
    if (!node) throw new Error(`no node ${region}`);
    return node;
  }

  cutLink(a: string, b: string): void {
    this.cut.add([a, b].sort().join("|"));
  }

  heal(): void {
    this.cut.clear();
  }

  reachable(from: string, to: string): boolean {
    return (
      this.nodes.has(to) &&
      !this.stopped.has(from) &&
      !this.stopped.has(to) &&
      !this.cut.has([from, to].sort().join("|"))
    );
  }

  deliver(from: string, to: string, message: GossipMessage): void {
    if (!this.reachable(from, to)) return;
    for (const reply of this.node(to).receive(message, this.now)) this.deliver(to, from, reply);
  }

  send(from: string, sends: Outgoing[]): void {
    for (const { to, message } of sends) this.deliver(from, to, message);
  }

  round(): void {
    this.now += this.settings.gossipIntervalMs;
    for (const [region, node] of this.nodes) {
      if (this.stopped.has(region) || this.frozen.has(region)) continue;
      this.send(region, node.tick(this.now, this.random).sends);
    }
  }

  rounds(n: number): void {
    for (let i = 0; i < n; i++) this.round();
  }

  /** Rounds until `done` holds; returns how many it took, or fails after `max`. */
  until(done: () => boolean, max = 200): number {
    for (let i = 0; i < max; i++) {
      if (done()) return i;
      this.round();
    }
    if (done()) return max;
    throw new Error(`condition not reached in ${max} rounds`);
  }

  /** Each node's view as region -> status, for the regions it knows. */
  statuses(observer: string): Record<string, MemberStatus> {
    const out: Record<string, MemberStatus> = {};
    for (const e of this.node(observer).view(this.now).entries) out[e.region] = e.status;
    return out;
  }

  /** The listed nodes hold the same regions with the same statuses and incarnations. */
  converged(among: string[]): boolean {
    const summaries = among.map((observer) =>
      this.node(observer)
        .view(this.now)
        .entries.map((e) => `${e.region}:${e.status}:${e.incarnation}`)
        .join(","),
    );
    return summaries.every((summary) => summary === summaries[0]);
  }

  /** "from->to" steps one observer saw for one region. */
  path(observer: string, region: string): string[] {
    return this.transitions
      .filter((t) => t.observer === observer && t.region === region)
      .map((t) => `${t.from}->${t.to}`);
  }

  everyoneSees(region: string, status: MemberStatus, among = [...this.nodes.keys()]): boolean {
    return among.every(
      (observer) => observer === region || this.node(observer).statusOf(region) === status,
    );
  }
}

function allAlive(cluster: Cluster, regions: string[]): boolean {
  return regions.every((observer) =>
    regions.every((region) => cluster.node(observer).statusOf(region) === "alive"),
  );
}

/** A converged cluster of A, B, C (B and C join through A). */
function abc(settings: GossipSettings = SETTINGS): Cluster {
  const cluster = new Cluster(settings);
  cluster.add("A");
  cluster.add("B", ["A"]);
  cluster.add("C", ["A"]);
  cluster.until(() => allAlive(cluster, ["A", "B", "C"]), 10);
  cluster.rounds(2);
  return cluster;
}

function syn(from: MembershipNode, now: number, nonce = 1000): GossipMessage {
  return {
    kind: "syn",
    from: from.region,
    nonce,
    digest: from.view(now).entries.map(digestOf),
  };
}

describe("MembershipNode: joining", () => {
  it("a region starts alone, alive, at its clock's incarnation, and reports its own start", () => {
    const seen: StatusTransition[] = [];
    const node = MembershipNode.start(
      { region: "A", shards: 3, seeds: ["A"] },
      SETTINGS,
      T0,
      undefined,
      (t) => seen.push(t),
    );
    expect(node.entry("A")).toMatchObject({
      status: "alive",
      incarnation: FRESH,
      heartbeat: 0,
      shards: 3,
      accusers: [],
    });
    expect(seen).toEqual([{ region: "A", from: null, to: "alive", incarnation: FRESH, at: T0 }]);
    // Its own name among the seeds is ignored: nothing to contact.
    expect(node.tick(T0 + 100, half).sends).toEqual([]);
    expect(node.tick(T0 + 100, half).nextTickAt).toBe(T0 + 200);
  });

  it("new regions join through a seed and within a few rounds every table has every region alive", () => {
    const cluster = new Cluster();
    cluster.add("A");
    cluster.add("B", ["A"]);
    cluster.add("C", ["A"]);
    cluster.add("D", ["B"]);
    const regions = ["A", "B", "C", "D"];
    expect(cluster.node("B").statusOf("A")).toBeUndefined();
    // The first syn of a region that knows no one goes to its seed.
    const first = cluster.node("D").tick(cluster.now + 1, half).sends;
    expect(first.map((s) => s.to)).toEqual(["B"]);
    expect(first[0]?.message).toMatchObject({ kind: "syn", from: "D" });
    const taken = cluster.until(() => allAlive(cluster, regions), 10);
    expect(taken).toBeLessThanOrEqual(4);
    for (const region of regions) {
      expect(
        cluster
          .node(region)
          .view(cluster.now)
          .entries.map((e) => e.region),
      ).toEqual(regions);
      expect(cluster.path(region, region)).toEqual(["null->alive"]);
    }
    expect(cluster.path("A", "D")).toEqual(["null->alive"]);
  });

  it("with fanout 1 and a seeded random source, six regions still converge", () => {
    // suspectAfterMs of 10 rounds: with fanout 1 a heartbeat can take more than 3 rounds to
    // cross six regions, and the test is about convergence, not about false suspicions.
    const cluster = new Cluster({ ...SETTINGS, fanout: 1, suspectAfterMs: 1000 }, lcg(42));
    const regions = ["A", "B", "C", "D", "E", "F"];
    cluster.add("A");
    for (const region of regions.slice(1)) cluster.add(region, ["A"]);
    cluster.until(() => allAlive(cluster, regions), 40);
    // Stays converged: no one is suspected while everyone gossips.
    cluster.rounds(50);
    expect(allAlive(cluster, regions)).toBe(true);
    expect(cluster.transitions.filter((t) => t.to !== "alive")).toEqual([]);
  });
});

describe("MembershipNode: heartbeats and digests", () => {
  it("each round raises a region's heartbeat, and the others see it advance", () => {
    const cluster = abc();
    const before = Object.fromEntries(
      ["A", "B", "C"].map((o) => [o, cluster.node(o).view(cluster.now).entries]),
    );
    cluster.rounds(5);
    for (const observer of ["A", "B", "C"]) {
      const after = cluster.node(observer).view(cluster.now).entries;
      for (const [i, e] of after.entries()) {
        const old = before[observer]?.[i] as RegionEntry;
        expect(e.region).toBe(old.region);
        expect(e.heartbeat).toBeGreaterThanOrEqual(old.heartbeat + 4);
        expect(e.lastHeardMsAgo).toBeLessThanOrEqual(SETTINGS.gossipIntervalMs);
      }
      expect(cluster.node(observer).entry(observer)?.heartbeat).toBe(
        (before[observer]?.find((e) => e.region === observer)?.heartbeat ?? -99) + 5,
      );
    }
  });

  it("a digest exchange sends only what the peer lacks, and asks for only what the sender has newer", () => {
    const cluster = abc();
    const a = cluster.node("A");
    const b = cluster.node("B");
    const now = cluster.now + 1;
    // One full exchange makes A's and B's tables equal (no tick in between).
    const first = b.receive(syn(a, now, 1), now);
    expect(first).toHaveLength(1);
    for (const reply of a.receive(first[0] as GossipMessage, now)) b.receive(reply, now);
    const versions = (n: MembershipNode) => n.view(now).entries.map(digestOf);
    expect(versions(a)).toEqual(versions(b));
    // Equal tables: nothing to send either way.
    expect(b.receive(syn(a, now, 2), now)).toEqual([emptyAck("B", 2)]);

    // B's figures change: B's ack carries just its own entry, whole.
    b.report(now, { load: { connections: 7, rooms: 2 } });
    const [ack] = b.receive(syn(a, now, 3), now);
    expect(ack).toEqual({
      kind: "ack",
      from: "B",
      nonce: 3,
      entries: [b.entry("B")],
      beats: [],
      want: [],
    });
    expect(b.entry("B")?.load).toEqual({ connections: 7, rooms: 2 });
    expect(a.receive(ack as GossipMessage, now)).toEqual([]);
    expect(a.entry("B")).toEqual(b.entry("B"));

    // A's figures change: B's ack wants A (quoting B's own version of it) and A's ack2 carries
    // just that entry, whole.
    const bsVersionOfA = digestOf(b.entry("A") as RegionEntry);
    a.resize(now, 5);
    const [wanting] = b.receive(syn(a, now, 4), now);
    expect(wanting).toEqual({
      kind: "ack",
      from: "B",
      nonce: 4,
      entries: [],
      beats: [],
      want: [bsVersionOfA],
    });
    const reply = a.receive(wanting as GossipMessage, now);
    expect(reply).toEqual([ack2("A", [a.entry("A") as RegionEntry])]);
    b.receive(reply[0] as GossipMessage, now);
    expect(b.entry("A")?.shards).toBe(5);
    expect(versions(a)).toEqual(versions(b));
  });

  it("a heartbeat that moved without new content travels as a beat, not as the whole entry", () => {
    const cluster = abc();
    const a = cluster.node("A");
    const b = cluster.node("B");
    let now = cluster.now + 1;
    const first = b.receive(syn(a, now, 1), now);
    for (const reply of a.receive(first[0] as GossipMessage, now)) b.receive(reply, now);
    // B's heartbeat moves twice (two rounds) with no change of figures.
    now += 100;
    b.tick(now, half);
    now += 100;
    b.tick(now, half);
    const self = b.entry("B") as RegionEntry;
    expect(self.heartbeat).toBeGreaterThan(self.contentAt);
    const [ack] = b.receive(syn(a, now, 2), now);
    expect(ack).toMatchObject({
      kind: "ack",
      entries: [],
      beats: [["B", self.incarnation, self.heartbeat]],
      want: [],
    });
    a.receive(ack as GossipMessage, now);
    expect(a.entry("B")).toMatchObject({ heartbeat: self.heartbeat, load: self.load });
    expect(a.view(now).entries.find((e) => e.region === "B")?.lastHeardMsAgo).toBe(0);
    // A report that changes nothing is not content (and not even a heartbeat).
    b.report(now, { load: { ...self.load }, hotShards: [] });
    expect(b.resize(now, self.shards)).toBe(self);
    expect(b.entry("B")).toBe(self);
    // A real change is: the next exchange carries the whole entry again.
    b.resize(now, self.shards + 1);
    const [whole] = b.receive(syn(a, now, 3), now);
    expect(whole).toMatchObject({ entries: [b.entry("B")], beats: [] });
    expect(b.entry("B")?.contentAt).toBe(b.entry("B")?.heartbeat);
  });

  it("a syn naming a region the receiver lacks asks for it; regions missing from the digest are sent", () => {
    const cluster = abc();
    const b = cluster.node("B");
    const now = cluster.now + 1;
    const digest = [
      digestOf(entry({ region: "Z", heartbeat: 3 })),
      digestOf(b.entry("A") as RegionEntry),
    ];
    const [ack] = b.receive({ kind: "syn", from: "A", nonce: 9, digest }, now);
    // "Z" is wanted with a version that is older than anything: heartbeat -1.
    expect(ack).toMatchObject({ kind: "ack", nonce: 9, beats: [] });
    const { want, entries } = ack as Extract<GossipMessage, { kind: "ack" }>;
    expect(want.map((item) => [item[0], item[3]])).toEqual([["Z", UNKNOWN_HEARTBEAT]]);
    expect(UNKNOWN_HEARTBEAT).toBe(-1);
    const sent = entries.map((e) => e.region);
    expect(sent.sort()).toEqual(["B", "C"]);
  });
});

describe("deltaFor", () => {
  const mine = entry({ status: "alive", incarnation: 2, heartbeat: 10, contentAt: 6 });
  const theirs = (over: Partial<RegionEntry>) => digestOf({ ...mine, ...over });

  it("sends nothing to a peer as new or newer, and everything to a peer that lacks the region", () => {
    expect(deltaFor(mine, undefined)).toBe("full");
    expect(deltaFor(mine, digestOf(mine))).toBe("none");
    expect(deltaFor(mine, theirs({ heartbeat: 12 }))).toBe("none");
    expect(deltaFor(mine, theirs({ incarnation: 3, heartbeat: 0 }))).toBe("none");
  });

  it("sends a beat only for the owner's own word when the peer already holds this content", () => {
    expect(deltaFor(mine, theirs({ heartbeat: 6 }))).toBe("beat");
    expect(deltaFor(mine, theirs({ heartbeat: 9 }))).toBe("beat");
    // The peer's version predates the content.
    expect(deltaFor(mine, theirs({ heartbeat: 5 }))).toBe("full");
    // An older life or a lower status: the whole entry.
    expect(deltaFor(mine, theirs({ incarnation: 1, heartbeat: 9 }))).toBe("full");
    const left = { ...mine, status: "left" as const };
    expect(deltaFor(left, digestOf({ ...left, heartbeat: 8 }))).toBe("beat");
    expect(deltaFor(left, theirs({ heartbeat: 8 }))).toBe("full");
    // Accusations are never beats.
    const suspect = { ...mine, status: "suspect" as const, accusers: ["a", "b"] };
    expect(deltaFor(suspect, digestOf({ ...suspect, heartbeat: 8 }))).toBe("full");
    expect(deltaFor(suspect, digestOf({ ...suspect, accusers: ["a"] }))).toBe("full");
    // An equal version with a different set of accusers is sent too, so the sets unite.
    expect(deltaFor(suspect, digestOf({ ...suspect, accusers: ["a", "c"] }))).toBe("full");
    expect(deltaFor(suspect, digestOf(suspect))).toBe("none");
  });
});

describe("MembershipNode: failure detection", () => {
  it("a region that stops is suspected after suspectAfterMs, then declared dead, by every other region", () => {
    const cluster = abc();
    cluster.stopped.add("C");
    const stoppedAt = cluster.now;
    // Not within suspectAfterMs of its last message.
    cluster.rounds(SETTINGS.suspectAfterMs / SETTINGS.gossipIntervalMs);
    expect(cluster.node("A").statusOf("C")).toBe("alive");
    expect(cluster.node("B").statusOf("C")).toBe("alive");

    cluster.until(() => cluster.everyoneSees("C", "suspect", ["A", "B"]), 30);
    const suspectedAt = cluster.now;
    expect(suspectedAt - stoppedAt).toBeGreaterThan(SETTINGS.suspectAfterMs);
    cluster.until(() => cluster.everyoneSees("C", "dead", ["A", "B"]), 60);
    expect(cluster.now - suspectedAt).toBeGreaterThanOrEqual(SETTINGS.suspicionMinMs);
    expect(cluster.now - stoppedAt).toBeLessThanOrEqual(deathDeclaredWithinMs(SETTINGS, 3));

    for (const observer of ["A", "B"]) {
      expect(cluster.path(observer, "C")).toEqual([
        "null->alive",
        "alive->suspect",
        "suspect->dead",
      ]);
      const dead = cluster.transitions.find((t) => t.observer === observer && t.to === "dead");
      expect(dead).toMatchObject({ region: "C", incarnation: FRESH });
      // Both had their own record of C go stale: both are among the accusers.
      expect(cluster.node(observer).entry("C")?.accusers).toEqual(["A", "B"]);
    }
    // A and B never doubted each other.
    expect(cluster.path("A", "B")).toEqual(["null->alive"]);
    expect(cluster.path("B", "A")).toEqual(["null->alive"]);
    // Once C is dead, syns to it are probes that do not count against health.
    cluster.rounds(10);
    expect(cluster.node("A").health).toBe(0);
    expect(cluster.node("B").health).toBe(0);
    expect(cluster.node("A").statusOf("C")).toBe("dead");
  });

  it("a suspicion waits its Lifeguard timeout: not dead before suspicionMinMs after the suspicion", () => {
    const cluster = abc();
    cluster.stopped.add("C");
    cluster.until(() => cluster.node("A").statusOf("C") === "suspect", 30);
    const suspectedAt = cluster.now;
    cluster.until(() => cluster.node("A").statusOf("C") === "dead", 60);
    const deadAt = cluster.transitions.find((t) => t.observer === "A" && t.to === "dead")?.at;
    expect(deadAt).toBeDefined();
    expect((deadAt as number) - suspectedAt).toBeGreaterThanOrEqual(SETTINGS.suspicionMinMs);
  });
});

/** One observer A that knows B and C (from stored state); B answers every syn, C is silent. */
function observerOfSilentC(): {
  node: MembershipNode;
  transitions: StatusTransition[];
  round: (now: number, cSays?: boolean) => void;
} {
  const transitions: StatusTransition[] = [];
  const persisted: PersistedMembership = {
    region: "A",
    incarnation: 0,
    heartbeat: 0,
    drained: false,
    entries: [entry({ region: "B" }), entry({ region: "C" })],
  };
  const node = MembershipNode.start(
    { region: "A", shards: 2, seeds: [] },
    SETTINGS,
    T0,
    persisted,
    (t) => transitions.push(t),
  );
  const round = (now: number, cSays = false) => {
    for (const { to, message } of node.tick(now, half).sends) {
      if (message.kind !== "syn") continue;
      if (to === "B" || (to === "C" && cSays)) {
        node.receive(emptyAck(to, message.nonce), now);
      }
    }
  };
  return { node, transitions, round };
}

describe("MembershipNode: the Lifeguard guard", () => {
  it("a region that hears from the suspect directly does not declare it dead; one that hears nothing does", () => {
    const hearing = observerOfSilentC();
    const deaf = observerOfSilentC();
    let now = T0;
    // Both suspect C while it is silent.
    while (hearing.node.statusOf("C") !== "suspect") {
      now += 100;
      hearing.round(now);
      deaf.round(now);
      if (now - T0 > 10_000) throw new Error("C never suspected");
    }
    expect(deaf.node.statusOf("C")).toBe("suspect");
    expect(hearing.node.entry("C")?.accusers).toEqual(["A"]);
    // Now C answers the hearing observer (its heartbeat is stuck: the acks carry nothing new).
    for (let i = 0; i < 200; i++) {
      now += 100;
      hearing.round(now, true);
      deaf.round(now);
    }
    expect(deaf.node.statusOf("C")).toBe("dead");
    expect(deaf.transitions.map((t) => t.to)).toContain("dead");
    expect(hearing.node.statusOf("C")).toBe("suspect");
    expect(hearing.transitions.filter((t) => t.region === "C").map((t) => t.to)).toEqual([
      "suspect",
    ]);
    // Any message at all counts, not just acks: an empty ack2.
    const other = observerOfSilentC();
    now = T0;
    while (other.node.statusOf("C") !== "suspect") {
      now += 100;
      other.round(now);
      if (now - T0 > 10_000) throw new Error("C never suspected");
    }
    for (let i = 0; i < 200; i++) {
      now += 100;
      other.node.receive(ack2("C"), now);
      other.round(now);
    }
    expect(other.node.statusOf("C")).toBe("suspect");
    // When C falls silent again, the observer's own record goes stale and the death follows.
    for (let i = 0; i < 200 && other.node.statusOf("C") !== "dead"; i++) {
      now += 100;
      other.round(now);
    }
    expect(other.node.statusOf("C")).toBe("dead");
  });

  it("news of C's fresh heartbeat through a third region also keeps the observer from confirming", () => {
    const observer = observerOfSilentC();
    let now = T0;
    while (observer.node.statusOf("C") !== "suspect") {
      now += 100;
      observer.round(now);
      if (now - T0 > 10_000) throw new Error("C never suspected");
    }
    // B relays C's own alive entry (or just its beat) with ever newer heartbeats; it loses to
    // the suspicion in the table (same incarnation) but is evidence that C lives.
    for (let i = 1; i <= 200; i++) {
      now += 100;
      observer.node.receive(
        i % 2 === 0
          ? ack2("B", [entry({ region: "C", heartbeat: i })])
          : ack2("B", [], [["C", 0, i]]),
        now,
      );
      observer.round(now);
    }
    expect(observer.node.statusOf("C")).toBe("suspect");
  });
});

describe("MembershipNode: first-hand evidence against second-hand accusations", () => {
  const accusation = (status: "suspect" | "dead", incarnation = 0): GossipMessage =>
    ack2("B", [entry({ region: "C", status, incarnation, heartbeat: 5, accusers: ["B"] })]);

  it("an accusation against a region heard from within suspectAfterMs, for that life, is not adopted", () => {
    const { node, transitions } = observerOfSilentC();
    const heardAt = T0 + 50;
    node.receive(ack2("C"), heardAt);
    const revision = node.revision;
    const before = node.entry("C");
    node.receive(accusation("suspect"), heardAt + 10);
    node.receive(accusation("dead"), heardAt + 20);
    node.receive(accusation("suspect"), heardAt + SETTINGS.suspectAfterMs);
    expect(node.entry("C")).toBe(before);
    expect(node.revision).toBe(revision);
    expect(transitions.filter((t) => t.region === "C")).toEqual([]);
    // Once its own record is older than suspectAfterMs it adopts the accusation like anyone.
    node.receive(accusation("suspect"), heardAt + SETTINGS.suspectAfterMs + 1);
    expect(node.entry("C")).toMatchObject({ status: "suspect", accusers: ["B"] });
    expect(node.revision).toBe(revision + 1);
    expect(transitions.filter((t) => t.region === "C").map((t) => `${t.from}->${t.to}`)).toEqual([
      "alive->suspect",
    ]);
  });

  it("an accusation against a later life than the one heard from is adopted at once", () => {
    const { node } = observerOfSilentC();
    node.receive(ack2("C"), T0 + 50);
    node.receive(accusation("dead", 1), T0 + 60);
    expect(node.entry("C")).toMatchObject({ status: "dead", incarnation: 1, accusers: ["B"] });
  });

  it("a frozen region (rounds stopped, still answering) cut off from B: A never doubts it, B's doubts reach it through A and it refutes each, no one declares it dead", () => {
    const cluster = abc();
    cluster.frozen.add("C");
    cluster.cutLink("B", "C");
    cluster.rounds(80);
    // A only ever sees C alive (at each refutation's new incarnation).
    expect(cluster.path("A", "C").every((step) => step.endsWith("->alive"))).toBe(true);
    expect(cluster.transitions.filter((t) => t.to === "dead")).toEqual([]);
    // B did doubt it (its heartbeat stopped), and each doubt was refuted.
    expect(cluster.path("B", "C")).toContain("alive->suspect");
    expect(cluster.path("B", "C")).toContain("suspect->alive");
    expect(cluster.node("C").entry("C")?.incarnation).toBeGreaterThan(FRESH);
    // When C stops answering too, A's own record goes stale and everyone gives it up.
    cluster.stopped.add("C");
    cluster.until(() => cluster.everyoneSees("C", "dead", ["A", "B"]), 80);
  });

  it("a region cut off from the accused still gets the accused's refutation through a third (non-transitive partition)", () => {
    const cluster = abc();
    // B alone for long enough to give up on A and C (and they on B)...
    cluster.cutLink("A", "B");
    cluster.cutLink("B", "C");
    // (alone, B's local health is poor, so it accuses slowly)
    cluster.until(() => cluster.node("B").statusOf("C") === "dead", 400);
    // ...then B reaches A again, but never C.
    cluster.cut.delete(["A", "B"].sort().join("|"));
    cluster.until(
      () => cluster.converged(["A", "B", "C"]) && allAlive(cluster, ["A", "B", "C"]),
      60,
    );
    // C heard of B's verdict from A (A did not adopt it: it hears C first-hand) and refuted it.
    expect(cluster.node("C").entry("C")?.incarnation).toBeGreaterThan(FRESH);
    // And it stays so: B keeps hearing C's heartbeats through A.
    cluster.rounds(100);
    expect(allAlive(cluster, ["A", "B", "C"])).toBe(true);
    expect(
      cluster.transitions.filter((t) => t.at > cluster.now - 9_000 && t.to !== "alive"),
    ).toEqual([]);
  });
});

describe("MembershipNode: refutation", () => {
  for (const status of ["suspect", "dead"] as const) {
    it(`a region told it is ${status} at its incarnation raises its incarnation and stays alive`, () => {
      const seen: StatusTransition[] = [];
      const node = MembershipNode.start(
        { region: "C", shards: 2, seeds: [] },
        SETTINGS,
        T0,
        undefined,
        (t) => seen.push(t),
      );
      node.tick(T0 + 100, half);
      const self = node.entry("C") as RegionEntry;
      const revision = node.revision;
      const accusation = { ...self, status, accusers: ["A"], changedAt: T0 + 100 };
      expect(node.receive(ack2("A", [accusation]), T0 + 150)).toEqual([]);
      const after = node.entry("C") as RegionEntry;
      expect(after).toMatchObject({
        status: "alive",
        incarnation: self.incarnation + 1,
        accusers: [],
        changedAt: T0 + 150,
      });
      expect(after.heartbeat).toBeGreaterThan(self.heartbeat);
      expect(node.health).toBe(1);
      expect(node.revision).toBeGreaterThan(revision);
      expect(seen.at(-1)).toEqual({
        region: "C",
        from: "alive",
        to: "alive",
        incarnation: self.incarnation + 1,
        at: T0 + 150,
      });
      // The refutation beats the accusation wherever both meet.
      expect(mergeEntry(accusation, after)).toBe(after);
      expect(mergeEntry(after, accusation)).toBe(after);
      // The same (now old) accusation again changes nothing.
      node.receive(ack2("A", [accusation]), T0 + 160);
      expect(node.entry("C")).toEqual(after);
    });
  }

  it("an accusation at an older incarnation is ignored", () => {
    const node = MembershipNode.start({ region: "C", shards: 2, seeds: [] }, SETTINGS, T0, {
      region: "C",
      incarnation: 1,
      heartbeat: 5,
      drained: false,
      entries: [],
    });
    const self = node.entry("C") as RegionEntry;
    expect(self.incarnation).toBe(2);
    node.receive(
      ack2("A", [{ ...self, incarnation: 1, status: "dead", accusers: ["A"], heartbeat: 99 }]),
      T0 + 1,
    );
    expect(node.entry("C")).toBe(self);
    expect(node.health).toBe(0);
  });

  it("after a partition the suspected region refutes and the others take its new incarnation", () => {
    const cluster = abc();
    cluster.cutLink("A", "C");
    cluster.cutLink("B", "C");
    cluster.until(() => cluster.everyoneSees("C", "suspect", ["A", "B"]), 30);
    expect(cluster.node("C").entry("C")?.incarnation).toBe(FRESH);
    cluster.heal();
    cluster.until(() => allAlive(cluster, ["A", "B", "C"]), 20);
    const c = cluster.node("C").entry("C") as RegionEntry;
    expect(c.incarnation).toBeGreaterThanOrEqual(1);
    expect(cluster.node("A").entry("C")?.incarnation).toBe(c.incarnation);
    expect(cluster.node("B").entry("C")?.incarnation).toBe(c.incarnation);
    for (const observer of ["A", "B"]) {
      expect(cluster.path(observer, "C")).toEqual([
        "null->alive",
        "alive->suspect",
        "suspect->alive",
      ]);
    }
    // Stays that way.
    cluster.rounds(30);
    expect(allAlive(cluster, ["A", "B", "C"])).toBe(true);
  });
});

describe("MembershipNode: drain", () => {
  it("drain announces `left` at a higher incarnation; it spreads and is never suspected while the region gossips", () => {
    const cluster = abc();
    const b = cluster.node("B");
    const revision = b.revision;
    const left = b.drain(cluster.now);
    expect(left).toMatchObject({
      region: "B",
      status: "left",
      incarnation: FRESH + 1,
      changedAt: cluster.now,
    });
    expect(b.drained).toBe(true);
    expect(b.revision).toBe(revision + 1);
    expect(cluster.path("B", "B")).toEqual(["null->alive", "alive->left"]);
    cluster.until(() => cluster.everyoneSees("B", "left"), 5);
    cluster.rounds(60);
    for (const observer of ["A", "C"]) {
      expect(cluster.node(observer).entry("B")).toMatchObject({
        status: "left",
        incarnation: FRESH + 1,
      });
      expect(cluster.path(observer, "B")).toEqual(["null->alive", "alive->left"]);
    }
    // A drained region still gossips and still hears of the others.
    expect(cluster.statuses("B")).toEqual({ A: "alive", B: "left", C: "alive" });

    // It stays `left` across a restart with its stored state.
    const restarted = cluster.add("B", ["A"], b.persisted());
    expect(restarted.drained).toBe(true);
    expect(restarted.entry("B")).toMatchObject({ status: "left", incarnation: FRESH + 2 });
    cluster.until(
      () =>
        cluster.everyoneSees("B", "left") &&
        cluster.node("A").entry("B")?.incarnation === FRESH + 2,
      5,
    );
    cluster.rounds(30);
    expect(cluster.everyoneSees("B", "left")).toBe(true);

    // Undrain brings it back alive at a still higher incarnation.
    const back = restarted.undrain(cluster.now);
    expect(back).toMatchObject({ status: "alive", incarnation: FRESH + 3 });
    expect(restarted.drained).toBe(false);
    cluster.until(() => allAlive(cluster, ["A", "B", "C"]), 5);
    expect(cluster.node("C").entry("B")?.incarnation).toBe(FRESH + 3);
    // The restart is reported too: same status, new incarnation.
    expect(cluster.path("C", "B")).toEqual([
      "null->alive",
      "alive->left",
      "left->left",
      "left->alive",
    ]);
    expect(cluster.transitions.filter((t) => t.to === "suspect" || t.to === "dead")).toEqual([]);
  });

  it("a drained region told it is dead refutes but stays `left`", () => {
    const node = MembershipNode.start({ region: "B", shards: 2, seeds: [] }, SETTINGS, T0);
    const left = node.drain(T0 + 1);
    node.receive(ack2("A", [{ ...left, status: "dead", accusers: ["A"] }]), T0 + 2);
    // left outranks dead, so a dead claim at the same incarnation is not newer: ignored.
    expect(node.entry("B")).toBe(left);
    node.receive(
      ack2("A", [{ ...left, incarnation: left.incarnation + 1, status: "dead", accusers: ["A"] }]),
      T0 + 3,
    );
    expect(node.entry("B")).toMatchObject({ status: "left", incarnation: left.incarnation + 2 });
  });
});

describe("MembershipNode: restarts", () => {
  it("a restart with stored state comes back at incarnation + 1 and beats the `dead` the others hold", () => {
    const cluster = abc();
    const stored = cluster.node("C").persisted();
    expect(stored).toMatchObject({ region: "C", incarnation: FRESH, drained: false });
    expect(stored.entries.map((e) => e.region).sort()).toEqual(["A", "B"]);
    cluster.stopped.add("C");
    cluster.until(() => cluster.everyoneSees("C", "dead", ["A", "B"]), 80);

    const c = cluster.add("C", ["A"], stored);
    expect(c.entry("C")).toMatchObject({
      status: "alive",
      incarnation: FRESH + 1,
      heartbeat: stored.heartbeat + 1,
    });
    // It knows A and B from storage and does not hold them against their absence.
    expect(cluster.statuses("C")).toEqual({ A: "alive", B: "alive", C: "alive" });
    cluster.until(() => allAlive(cluster, ["A", "B", "C"]), 5);
    expect(cluster.node("A").entry("C")?.incarnation).toBe(FRESH + 1);
    expect(cluster.path("A", "C")).toEqual([
      "null->alive",
      "alive->suspect",
      "suspect->dead",
      "dead->alive",
    ]);
    cluster.rounds(30);
    expect(allAlive(cluster, ["A", "B", "C"])).toBe(true);
  });

  it("a restart without stored state takes its incarnation from its clock, above what the others hold", () => {
    const cluster = abc();
    cluster.stopped.add("C");
    cluster.until(() => cluster.everyoneSees("C", "dead", ["A", "B"]), 80);
    cluster.now += 5_000; // comes back seconds later, its storage lost
    cluster.nodes.delete("C");
    const c = cluster.add("C", ["A"]);
    const incarnation = Math.floor(cluster.now / 1000);
    expect(c.entry("C")?.incarnation).toBe(incarnation);
    cluster.until(() => allAlive(cluster, ["A", "B", "C"]), 10);
    // Welcomed back at its own incarnation: the clock already put it above its death.
    expect(cluster.node("A").entry("C")?.incarnation).toBe(incarnation);
    expect(cluster.node("B").entry("C")?.incarnation).toBe(incarnation);
  });

  it("a restart without stored state, held dead above its clock's incarnation, refutes past it", () => {
    const cluster = new Cluster();
    const deadC = entry({
      region: "C",
      status: "dead",
      incarnation: FRESH + 100,
      heartbeat: 40,
      accusers: ["A", "B"],
    });
    cluster.add("A", [], {
      region: "A",
      incarnation: 0,
      heartbeat: 0,
      drained: false,
      entries: [entry({ region: "B", incarnation: 1 }), deadC],
    });
    cluster.add("B", [], {
      region: "B",
      incarnation: 0,
      heartbeat: 0,
      drained: false,
      entries: [entry({ region: "A", incarnation: 1 }), deadC],
    });
    const c = cluster.add("C", ["A"]);
    expect(c.entry("C")).toMatchObject({ incarnation: FRESH, status: "alive" });
    cluster.until(() => allAlive(cluster, ["A", "B", "C"]), 10);
    expect(c.entry("C")).toMatchObject({ incarnation: FRESH + 101, status: "alive" });
    for (const observer of ["A", "B"]) {
      expect(cluster.node(observer).entry("C")).toMatchObject({
        incarnation: FRESH + 101,
        status: "alive",
        accusers: [],
      });
    }
    // B loaded C's dead entry from storage (no transition for that), then saw it come back.
    expect(cluster.path("B", "C")).toEqual(["dead->alive"]);
    expect(cluster.path("C", "C")).toEqual(["null->alive", "alive->alive"]);
  });

  it("a restart within the same second as its former life steps past that life's heartbeat, and its figures are sent whole", () => {
    const node = MembershipNode.start({ region: "C", shards: 2, seeds: [] }, SETTINGS, T0);
    const revision = node.revision;
    node.receive(ack2("A", [entry({ region: "C", incarnation: FRESH, heartbeat: 50 })]), T0 + 1);
    expect(node.entry("C")).toMatchObject({
      status: "alive",
      incarnation: FRESH,
      heartbeat: 51,
      // A peer holding the former life's heartbeat 50 must get the whole entry, not a beat.
      contentAt: 51,
    });
    expect(deltaFor(node.entry("C") as RegionEntry, ["C", FRESH, 0, 50, 0, 0])).toBe("full");
    expect(node.revision).toBe(revision);
    expect(node.health).toBe(0);
  });

  it("new figures after a restart reach the peers (not only its heartbeat)", () => {
    const cluster = new Cluster();
    cluster.add("A");
    cluster.add("C", ["A"]);
    cluster.rounds(20);
    expect(cluster.node("A").entry("C")?.shards).toBe(2);
    cluster.nodes.delete("C");
    const c = MembershipNode.start({ region: "C", shards: 4, seeds: ["A"] }, SETTINGS, cluster.now);
    cluster.nodes.set("C", c);
    cluster.rounds(10);
    expect(cluster.node("A").entry("C")?.shards).toBe(4);
  });
});

/** Answers each syn in `sends` addressed to one of `answering`, at time `at`. */
function answer(
  node: MembershipNode,
  sends: Outgoing[],
  answering: readonly string[],
  at: number,
): void {
  for (const { to, message } of sends) {
    if (message.kind !== "syn" || !answering.includes(to)) continue;
    node.receive(emptyAck(to, message.nonce), at);
  }
}

describe("MembershipNode: local health", () => {
  it("each round no one answers raises health up to maxHealthScore; answered rounds lower it", () => {
    const { node } = observerOfSilentC();
    let now = T0;
    const rising: number[] = [];
    for (let i = 0; i < 10; i++) {
      now += 100;
      node.tick(now, half);
      rising.push(node.health);
    }
    // Judged once per round, when its acks are due (the next tick).
    expect(rising).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 8]);
    expect(node.view(now).health).toBe(8);

    const falling: number[] = [];
    for (let i = 0; i < 10; i++) {
      now += 100;
      answer(node, node.tick(now, half).sends, ["B", "C"], now);
      falling.push(node.health);
    }
    // The last unanswered round still counts (capped at 8) before the answered ones lower it.
    expect(falling).toEqual([8, 7, 6, 5, 4, 3, 2, 1, 0, 0]);
  });

  it("one answering peer is enough: a single silent peer is that peer's problem", () => {
    const { node, round } = observerOfSilentC();
    let now = T0;
    for (let i = 0; i < 4; i++) {
      now += 100;
      node.tick(now, half);
    }
    expect(node.health).toBe(3);
    for (let i = 0; i < 6; i++) {
      now += 100;
      round(now); // B answers, C does not
    }
    expect(node.health).toBe(0);
  });

  it("an ack counts only if it comes within ackTimeoutMs and matches an outstanding syn", () => {
    const { node } = observerOfSilentC();
    let now = T0;
    for (let i = 0; i < 4; i++) {
      now += 100;
      node.tick(now, half);
    }
    expect(node.health).toBe(3);
    // Answered 99 ms later: in time. (This tick judged the previous, unanswered round: 4.)
    now += 100;
    answer(node, node.tick(now, half).sends, ["B", "C"], now + 99);
    expect(node.health).toBe(4);
    now += 100;
    const sends = node.tick(now, half).sends;
    expect(node.health).toBe(3);
    // Answered exactly ackTimeoutMs later: too late, the round counts as missed.
    answer(node, sends, ["B", "C"], now + 100);
    now += 100;
    const next = node.tick(now, half).sends;
    expect(node.health).toBe(4);
    // Acks with nonces nobody sent do not help.
    for (const from of ["B", "C"]) {
      node.receive(emptyAck(from, 987_654), now + 1);
    }
    expect(next).toHaveLength(2);
    now += 100;
    node.tick(now, half);
    expect(node.health).toBe(5);
  });

  it("syns to a suspect, and probes to the dead or to unknown seeds, never count", () => {
    const silentSuspect = MembershipNode.start(
      { region: "A", shards: 2, seeds: [] },
      SETTINGS,
      T0,
      {
        region: "A",
        incarnation: 0,
        heartbeat: 0,
        drained: false,
        entries: [entry({ region: "C", status: "suspect", accusers: ["B"] })],
      },
    );
    const silentDead = MembershipNode.start(
      { region: "A", shards: 2, seeds: ["Z"] },
      SETTINGS,
      T0,
      {
        region: "A",
        incarnation: 0,
        heartbeat: 0,
        drained: false,
        entries: [entry({ region: "C", status: "dead", accusers: ["B"] })],
      },
    );
    const seedOnly = MembershipNode.start({ region: "A", shards: 2, seeds: ["Z"] }, SETTINGS, T0);
    const silentAlive = MembershipNode.start({ region: "A", shards: 2, seeds: [] }, SETTINGS, T0, {
      region: "A",
      incarnation: 0,
      heartbeat: 0,
      drained: false,
      entries: [entry({ region: "C" })],
    });
    for (let i = 1; i <= 20; i++) {
      const now = T0 + i * 100;
      expect(silentSuspect.tick(now, half).sends.map((s) => s.to)).toEqual(["C"]);
      // The unknown seed Z every round (joining), and the dead C as the round's probe.
      expect(silentDead.tick(now, half).sends.map((s) => s.to)).toEqual(["Z", "C"]);
      expect(seedOnly.tick(now, half).sends.map((s) => s.to)).toEqual(["Z"]);
      silentAlive.tick(now, half);
    }
    expect(silentSuspect.health).toBe(0);
    expect(silentDead.health).toBe(0);
    expect(seedOnly.health).toBe(0);
    expect(silentAlive.health).toBe(SETTINGS.maxHealthScore);
  });
});

describe("MembershipNode: revision", () => {
  it("does not change on a plain heartbeat tick or a load report", () => {
    const lone = MembershipNode.start({ region: "A", shards: 2, seeds: [] }, SETTINGS, T0);
    const r0 = lone.revision;
    for (let i = 1; i <= 10; i++) lone.tick(T0 + i * 100, half);
    lone.report(T0 + 1_050, { load: { connections: 3, rooms: 1 } });
    expect(lone.entry("A")?.heartbeat).toBe(11);
    expect(lone.revision).toBe(r0);

    const cluster = abc();
    const before = ["A", "B", "C"].map((r) => cluster.node(r).revision);
    cluster.rounds(20);
    expect(["A", "B", "C"].map((r) => cluster.node(r).revision)).toEqual(before);
  });

  it("changes on status and incarnation changes, its own and others'", () => {
    const cluster = abc();
    const a = cluster.node("A");
    const c = cluster.node("C");
    let ra = a.revision;
    let rc = c.revision;
    c.drain(cluster.now);
    expect(c.revision).toBeGreaterThan(rc);
    rc = c.revision;
    cluster.rounds(3);
    expect(a.revision).toBeGreaterThan(ra);
    ra = a.revision;
    c.undrain(cluster.now);
    expect(c.revision).toBeGreaterThan(rc);
    cluster.rounds(3);
    expect(a.revision).toBeGreaterThan(ra);
    ra = a.revision;
    // A suspicion and a death both count.
    cluster.stopped.add("C");
    cluster.until(() => a.statusOf("C") === "suspect", 30);
    expect(a.revision).toBeGreaterThan(ra);
    ra = a.revision;
    cluster.until(() => a.statusOf("C") === "dead", 60);
    expect(a.revision).toBeGreaterThan(ra);
  });
});
