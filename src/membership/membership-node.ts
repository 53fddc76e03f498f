import {
  type Beat,
  compareVersions,
  type DigestItem,
  deltaFor,
  digestOf,
  gainsFrom,
  type HotShard,
  type MemberStatus,
  mergeEntry,
  type RegionEntry,
  type RegionLoad,
  SHARD_HISTORY,
  type ShardLoadReport,
  statusRank,
  UNKNOWN_HEARTBEAT,
} from "./region-entry";
import { LocalHealth, sizeScale, suspicionTimeoutMs } from "./suspicion";

/**
 * One region's view of region membership, as a pure state machine (DESIGN.md, "Region
 * membership"; SWIM with Lifeguard, Scuttlebutt digests). No clock, no timer, no I/O: time and
 * randomness come in as arguments, messages go out as return values. The directory Durable
 * Object runs it on its alarm and over RPC; the simulator runs many of them on virtual time.
 *
 * Failure detection is by heartbeat age: each region raises its heartbeat every round, gossip
 * carries it everywhere in about log(N) rounds, and a region whose heartbeat has not advanced
 * for `suspectAfterMs` (scaled by table size and local health) is suspected. A suspicion
 * becomes a death after a Lifeguard timeout that shortens with independent reports, and only
 * if this region has not heard from the suspect meanwhile. A region refutes a suspicion of
 * itself by raising its incarnation.
 */

export interface GossipSettings {
  gossipIntervalMs: number;
  /** Peers contacted per round. */
  fanout: number;
  suspectAfterMs: number;
  suspicionMinMs: number;
  suspicionMaxMs: number;
  /** Independent reports after which a suspicion waits only `suspicionMinMs`. */
  suspicionConfirmations: number;
  /** An exchange unanswered this long counts against local health. */
  ackTimeoutMs: number;
  maxHealthScore: number;
}

/**
 * Push-pull with digests (Scuttlebutt): the syn carries a version per region; the ack carries
 * what the sender lacks (whole entries, or beats where only the heartbeat moved) and the
 * versions it wants; the ack2 carries those. Only newer things ever travel.
 */
export type GossipMessage =
  | { kind: "syn"; from: string; nonce: number; digest: DigestItem[] }
  | {
      kind: "ack";
      from: string;
      nonce: number;
      entries: RegionEntry[];
      beats: Beat[];
      /** The acker's versions of what it wants (heartbeat -1: it knows nothing of the region). */
      want: DigestItem[];
    }
  | { kind: "ack2"; from: string; entries: RegionEntry[]; beats: Beat[] };

export interface Outgoing {
  to: string;
  message: GossipMessage;
}

/** What a directory keeps in storage: enough to come back with a higher incarnation and a known table. */
export interface PersistedMembership {
  region: string;
  incarnation: number;
  heartbeat: number;
  drained: boolean;
  /** The operator's shard count and its epoch (absent before the first resize, or in older rows). */
  shards?: { count: number; epoch: number; previous: number[] };
  entries: RegionEntry[];
}

export interface StatusTransition {
  region: string;
  from: MemberStatus | null;
  to: MemberStatus;
  incarnation: number;
  at: number;
}

/** A shard over either figure is hot: the region's entry names it until it cools. */
export interface LoadTarget {
  connections: number;
  messagesPerSecond: number;
}

/** The most hot shards an entry names (the hottest), so an entry stays small. */
export const MAX_HOT_SHARDS = 8;

export interface MembershipIdentity {
  region: string;
  /** The configured shard count: the count until an operator resizes (then storage holds it). */
  shards: number;
  loadTarget?: LoadTarget;
  /** Regions contacted while they are not in the table (joining, and re-joining after a loss). */
  seeds: readonly string[];
}

export interface MembershipViewEntry extends RegionEntry {
  /** How long ago this region last heard evidence that the entry's region is alive (0 for itself). */
  lastHeardMsAgo: number;
}

export interface MembershipView {
  region: string;
  incarnation: number;
  /** Lifeguard local-health score: 0 is healthy. */
  health: number;
  entries: MembershipViewEntry[];
}

/** Per region, what this region has itself observed (never gossiped). */
interface Observation {
  /** The newest (incarnation, heartbeat) the region itself wrote that reached us. */
  incarnation: number;
  heartbeat: number;
  lastHeardAt: number;
  /** When the current suspicion reached this table (local clock). */
  suspectedAt: number;
}

export class MembershipNode {
  readonly region: string;
  readonly #settings: GossipSettings;
  readonly #seeds: readonly string[];
  readonly #table = new Map<string, RegionEntry>();
  readonly #seen = new Map<string, Observation>();
  readonly #health: LocalHealth;
  /** Syns awaiting an ack: nonce -> the round that sent it (only syns to regions believed alive). */
  readonly #outstanding = new Map<number, Round>();
  /** Rounds whose acks are still awaited. */
  readonly #rounds = new Set<Round>();
  readonly #onTransition: ((t: StatusTransition) => void) | undefined;
  /** Accusations not adopted (see `#disbelieves`), by accused region, passed on to the accused. */
  readonly #rumours = new Map<string, RegionEntry>();
  /** The latest load report of each of this region's shards, by index. */
  readonly #shardLoads = new Map<number, ShardLoadReport>();
  readonly #loadTarget: LoadTarget | undefined;
  #drained: boolean;
  #nonce = 0;
  /** Bumped whenever something worth persisting changes (statuses, incarnations, accusers; not heartbeats or load). */
  #revision = 0;

  private constructor(
    identity: MembershipIdentity,
    settings: GossipSettings,
    now: number,
    persisted: PersistedMembership | undefined,
    onTransition: ((t: StatusTransition) => void) | undefined,
  ) {
    this.region = identity.region;
    this.#settings = settings;
    this.#seeds = identity.seeds.filter((seed) => seed !== identity.region);
    this.#health = new LocalHealth(settings.maxHealthScore);
    this.#onTransition = onTransition;
    this.#drained = persisted?.drained ?? false;
    this.#loadTarget = identity.loadTarget;
    // Configuration gives the count until an operator resizes; from then on the stored one rules.
    const sharding = persisted?.shards && persisted.shards.epoch > 0 ? persisted.shards : undefined;
    // A restart comes back with a higher incarnation, so whatever the others concluded while
    // this region was away (suspect, dead) is overridden by its return.
    const self: RegionEntry = {
      region: this.region,
      status: this.#drained ? "left" : "alive",
      // Without storage, an incarnation from the clock (seconds): above any earlier life's,
      // whose entries may still be gossiped with different figures under the same version.
      incarnation: persisted ? persisted.incarnation + 1 : Math.floor(now / 1000),
      heartbeat: persisted ? persisted.heartbeat + 1 : 0,
      contentAt: persisted ? persisted.heartbeat + 1 : 0,
      shards: sharding?.count ?? identity.shards,
      shardEpoch: sharding?.epoch ?? 0,
      previousShards: sharding?.previous ?? [],
      load: { connections: 0, rooms: 0 },
      hotShards: [],
      changedAt: now,
      accusers: [],
    };
    this.#table.set(this.region, self);
    this.#note(null, self, now);
    for (const entry of persisted?.entries ?? []) {
      if (entry.region === this.region) continue;
      this.#table.set(entry.region, entry);
      // Give everyone a fresh grace: how long this region was away says nothing about them.
      this.#seen.set(entry.region, {
        incarnation: entry.incarnation,
        heartbeat: entry.heartbeat,
        lastHeardAt: now,
        suspectedAt: now,
      });
    }
  }

  /** A region's first start (`persisted` undefined) or its restart with its stored state. */
  static start(
    identity: MembershipIdentity,
    settings: GossipSettings,
    now: number,
    persisted?: PersistedMembership,
    onTransition?: (t: StatusTransition) => void,
  ): MembershipNode {
    return new MembershipNode(identity, settings, now, persisted, onTransition);
  }

  get revision(): number {
    return this.#revision;
  }

  get health(): number {
    return this.#health.score;
  }

  get drained(): boolean {
    return this.#drained;
  }

  entry(region: string): RegionEntry | undefined {
    return this.#table.get(region);
  }

  statusOf(region: string): MemberStatus | undefined {
    return this.#table.get(region)?.status;
  }

  /** One gossip round: heartbeat, failure detection, then a digest to `fanout` random peers. */
  tick(now: number, random: () => number): { sends: Outgoing[]; nextTickAt: number } {
    this.#updateSelf(now, {});
    this.#judgeRounds(now);
    this.#detect(now);
    const digest = [...this.#table.values()].map(digestOf);
    const sends: Outgoing[] = [];
    const round: Round = { sentAt: now, sent: 0, answered: 0 };
    for (const { to, counts } of this.#targets(random)) {
      const nonce = ++this.#nonce;
      if (counts) {
        this.#outstanding.set(nonce, round);
        round.sent++;
      }
      sends.push({ to, message: { kind: "syn", from: this.region, nonce, digest } });
    }
    if (round.sent > 0) this.#rounds.add(round);
    return { sends, nextTickAt: now + this.#settings.gossipIntervalMs };
  }

  /** Handles one message; the return value goes back to its sender. */
  receive(message: GossipMessage, now: number): GossipMessage[] {
    if (message.from === this.region) return [];
    this.#heardFrom(message.from, now);
    switch (message.kind) {
      case "syn":
        return [this.#answerSyn(message, now)];
      case "ack": {
        const round = this.#outstanding.get(message.nonce);
        if (round) {
          this.#outstanding.delete(message.nonce);
          if (now - round.sentAt < this.#settings.ackTimeoutMs) round.answered++;
        }
        this.#absorb(message, now);
        const { entries, beats } = this.#deltas(
          message.want.map((item) => [item[0], item] as const),
        );
        entries.push(...this.#rumourFor(message.from));
        return entries.length + beats.length > 0
          ? [{ kind: "ack2", from: this.region, entries, beats }]
          : [];
      }
      case "ack2":
        this.#absorb(message, now);
        return [];
    }
  }

  /** An operator's drain: the region announces `left`, which beats its `alive` everywhere. */
  drain(now: number): RegionEntry {
    this.#drained = true;
    return this.#updateSelf(now, { status: "left", incarnation: this.#self.incarnation + 1 });
  }

  undrain(now: number): RegionEntry {
    this.#drained = false;
    return this.#updateSelf(now, { status: "alive", incarnation: this.#self.incarnation + 1 });
  }

  /** This region's own figures, gossiped with its next heartbeat (only a real change is content). */
  report(now: number, figures: { load?: RegionLoad; hotShards?: HotShard[] }): void {
    const self = this.#self;
    const change: { load?: RegionLoad; hotShards?: HotShard[] } = {};
    if (
      figures.load &&
      (figures.load.connections !== self.load.connections || figures.load.rooms !== self.load.rooms)
    ) {
      change.load = figures.load;
    }
    if (figures.hotShards && !sameHotShards(figures.hotShards, self.hotShards))
      change.hotShards = figures.hotShards;
    if (Object.keys(change).length > 0) this.#updateSelf(now, change);
  }

  /**
   * An operator's resize: the new count under the next epoch, the old one kept in
   * `previousShards` (moved rooms are found there). The same count again changes nothing.
   */
  resize(now: number, shards: number): RegionEntry {
    const self = this.#self;
    if (shards === self.shards) return self;
    this.#revision++; // persisted: a restart must come back with this count
    return this.#updateSelf(now, {
      shards,
      shardEpoch: self.shardEpoch + 1,
      previousShards: [self.shards, ...self.previousShards].slice(0, SHARD_HISTORY),
    });
  }

  /**
   * One shard's latest figures: the region's entry carries the sum over its shards, and names
   * the shards over the load target. A shard outside the current count that reports nothing
   * left (it moved its rooms away) is forgotten.
   */
  reportShardLoad(now: number, shard: number, load: RegionLoad | ShardLoadReport): void {
    const report: ShardLoadReport = { messagesPerSecond: 0, ...load };
    if (shard >= this.#self.shards && report.connections === 0 && report.rooms === 0)
      this.#shardLoads.delete(shard);
    else this.#shardLoads.set(shard, report);
    let connections = 0;
    let rooms = 0;
    for (const each of this.#shardLoads.values()) {
      connections += each.connections;
      rooms += each.rooms;
    }
    this.report(now, { load: { connections, rooms }, hotShards: this.#hot() });
  }

  /** Every shard's latest report, by index (this region's own, not gossiped). */
  shardLoads(): HotShard[] {
    return [...this.#shardLoads]
      .map(([shard, load]) => ({ shard, ...load }))
      .sort((a, b) => a.shard - b.shard);
  }

  #hot(): HotShard[] {
    const target = this.#loadTarget;
    if (!target) return [];
    return this.shardLoads()
      .filter(
        (each) =>
          each.connections > target.connections ||
          each.messagesPerSecond > target.messagesPerSecond,
      )
      .sort(
        (a, b) =>
          b.messagesPerSecond / target.messagesPerSecond +
          b.connections / target.connections -
          (a.messagesPerSecond / target.messagesPerSecond + a.connections / target.connections),
      )
      .slice(0, MAX_HOT_SHARDS);
  }

  persisted(): PersistedMembership {
    const self = this.#self;
    return {
      region: this.region,
      incarnation: self.incarnation,
      heartbeat: self.heartbeat,
      drained: this.#drained,
      shards: { count: self.shards, epoch: self.shardEpoch, previous: self.previousShards },
      entries: [...this.#table.values()].filter((entry) => entry.region !== this.region),
    };
  }

  view(now: number): MembershipView {
    const entries = [...this.#table.values()]
      .map((entry) => ({
        ...entry,
        lastHeardMsAgo:
          entry.region === this.region
            ? 0
            : Math.max(0, now - (this.#seen.get(entry.region)?.lastHeardAt ?? now)),
      }))
      .sort((a, b) => (a.region < b.region ? -1 : a.region > b.region ? 1 : 0));
    return {
      region: this.region,
      incarnation: this.#self.incarnation,
      health: this.#health.score,
      entries,
    };
  }

  get #self(): RegionEntry {
    return this.#table.get(this.region) as RegionEntry;
  }

  /** Every change this region makes to its own entry raises its heartbeat: one version, one content. */
  #updateSelf(
    now: number,
    change: Partial<
      Pick<
        RegionEntry,
        "status" | "incarnation" | "load" | "shards" | "shardEpoch" | "previousShards" | "hotShards"
      >
    >,
  ): RegionEntry {
    const before = this.#self;
    const heartbeat = before.heartbeat + 1;
    const after: RegionEntry = {
      ...before,
      ...change,
      heartbeat,
      contentAt: Object.keys(change).length > 0 ? heartbeat : before.contentAt,
      changedAt:
        change.status !== undefined || change.incarnation !== undefined ? now : before.changedAt,
    };
    this.#table.set(this.region, after);
    this.#note(before, after, now);
    return after;
  }

  #answerSyn(message: Extract<GossipMessage, { kind: "syn" }>, now: number): GossipMessage {
    const theirs = new Map<string, DigestItem>();
    const want: DigestItem[] = [];
    for (const item of message.digest) {
      theirs.set(item[0], item);
      const mine = this.#table.get(item[0]);
      if (!mine) want.push([item[0], 0, 0, UNKNOWN_HEARTBEAT, 0, 0]);
      else if (gainsFrom(digestOf(mine), item)) want.push(digestOf(mine));
      // The sender's own line in its digest is its own word: evidence that it is alive.
      if (item[0] === message.from && (item[2] === 0 || item[2] === 3)) {
        this.#evidence(item[0], item[1], item[3], now);
      }
    }
    const { entries, beats } = this.#deltas(
      [...this.#table.keys()].map((region) => [region, theirs.get(region)] as const),
    );
    entries.push(...this.#rumourFor(message.from));
    return { kind: "ack", from: this.region, nonce: message.nonce, entries, beats, want };
  }

  /** For each region and the peer's version of it, what the peer lacks. */
  #deltas(peer: ReadonlyArray<readonly [string, DigestItem | undefined]>): {
    entries: RegionEntry[];
    beats: Beat[];
  } {
    const entries: RegionEntry[] = [];
    const beats: Beat[] = [];
    for (const [region, theirs] of peer) {
      const entry = this.#table.get(region);
      if (!entry) continue;
      const delta = deltaFor(entry, theirs);
      if (delta === "full") entries.push(entry);
      else if (delta === "beat") beats.push([region, entry.incarnation, entry.heartbeat]);
    }
    return { entries, beats };
  }

  #absorb(message: { entries: RegionEntry[]; beats: Beat[] }, now: number): void {
    for (const entry of message.entries) this.#merge(entry, now);
    for (const beat of message.beats) this.#mergeBeat(beat, now);
  }

  /** A beat moves the heartbeat of an entry whose content this region already holds; it is the owner's own word. */
  #mergeBeat([region, incarnation, heartbeat]: Beat, now: number): void {
    if (region === this.region) return;
    const local = this.#table.get(region);
    if (!local) return;
    this.#evidence(region, incarnation, heartbeat, now);
    if (
      local.incarnation === incarnation &&
      (local.status === "alive" || local.status === "left") &&
      heartbeat > local.heartbeat
    ) {
      this.#table.set(region, { ...local, heartbeat });
    }
  }

  #merge(incoming: RegionEntry, now: number): void {
    if (incoming.region === this.region) {
      this.#hearAboutSelf(incoming, now);
      return;
    }
    const local = this.#table.get(incoming.region);
    if (local && this.#disbelieves(local, incoming, now)) {
      const held = this.#rumours.get(incoming.region);
      this.#rumours.set(incoming.region, held ? mergeEntry(held, incoming) : incoming);
      return;
    }
    const merged = local ? mergeEntry(local, incoming) : incoming;
    if (incoming.status === "alive" || incoming.status === "left") {
      this.#evidence(incoming.region, incoming.incarnation, incoming.heartbeat, now);
    }
    if (merged === local) return;
    this.#table.set(incoming.region, merged);
    if (!local) {
      this.#seen.set(incoming.region, {
        incarnation: -1,
        heartbeat: -1,
        lastHeardAt: now,
        suspectedAt: now,
        ...this.#seen.get(incoming.region),
      });
    }
    if (
      !local ||
      local.status !== merged.status ||
      local.incarnation !== merged.incarnation ||
      local.accusers.length !== merged.accusers.length
    ) {
      this.#note(local ?? null, merged, now);
    }
  }

  /**
   * Someone holds a version of this region's entry that beats its own: a suspicion, a death, a
   * drain it no longer holds, or its own entry from before a restart that lost storage. It
   * refutes by taking an incarnation above that version, keeping its own status.
   */
  #hearAboutSelf(incoming: RegionEntry, now: number): void {
    const self = this.#self;
    const claim = compareVersions(digestOf(incoming), digestOf(self));
    if (claim <= 0) return;
    if (incoming.incarnation === self.incarnation && incoming.status === self.status) {
      // Its own older life's heartbeat (storage lost): step past it.
      const heartbeat = incoming.heartbeat + 1;
      // Its figures may differ from that life's under the same version: send them whole.
      this.#table.set(this.region, { ...self, heartbeat, contentAt: heartbeat });
      return;
    }
    if (incoming.status === "suspect" || incoming.status === "dead") this.#health.worse();
    this.#updateSelf(now, {
      incarnation: Math.max(self.incarnation, incoming.incarnation) + 1,
      status: this.#drained ? "left" : "alive",
    });
  }

  /**
   * Lifeguard's local health, judged per round once its acks are due: a round in which no peer
   * answered in time says more about this region than about its peers (one silent peer is that
   * peer's problem, and the failure detector deals with it).
   */
  #judgeRounds(now: number): void {
    for (const round of this.#rounds) {
      if (now - round.sentAt < this.#settings.ackTimeoutMs) continue;
      this.#rounds.delete(round);
      if (round.answered === 0) this.#health.worse();
      else this.#health.better();
    }
    for (const [nonce, round] of this.#outstanding) {
      if (!this.#rounds.has(round)) this.#outstanding.delete(nonce);
    }
  }

  /**
   * An accusation about a region this one has heard from itself within `suspectAfterMs`, for
   * the life it heard from, is not adopted: it is someone else's doubt against this region's
   * first-hand evidence (after a partition heals, each side's verdicts about the other arrive
   * before the refutations do). It is kept as a rumour and handed to the accused the next time
   * they talk, so the accused refutes it even if it cannot reach the accuser; and once this
   * region's own record goes stale it adopts the accusation like anyone else.
   */
  #disbelieves(local: RegionEntry, incoming: RegionEntry, now: number): boolean {
    if (incoming.status !== "suspect" && incoming.status !== "dead") return false;
    if (statusRank(local.status) >= statusRank(incoming.status)) return false;
    const seen = this.#seen.get(incoming.region);
    return (
      seen !== undefined &&
      incoming.incarnation <= seen.incarnation &&
      now - seen.lastHeardAt <= this.#settings.suspectAfterMs
    );
  }

  /**
   * An accusation this region did not adopt, for the accused itself: it may have no other way
   * to hear of it (its link to the accuser may be the broken one), and only it can refute it.
   * Dropped once the accused's own entry has moved past it.
   */
  #rumourFor(peer: string): RegionEntry[] {
    const rumour = this.#rumours.get(peer);
    if (!rumour) return [];
    if ((this.#table.get(peer)?.incarnation ?? -1) > rumour.incarnation) {
      this.#rumours.delete(peer);
      return [];
    }
    return [rumour];
  }

  /** Any message from a region is proof that it is alive now. */
  #heardFrom(region: string, now: number): void {
    const seen = this.#seen.get(region);
    if (seen) seen.lastHeardAt = now;
  }

  #evidence(region: string, incarnation: number, heartbeat: number, now: number): void {
    const seen = this.#seen.get(region);
    if (!seen) {
      this.#seen.set(region, { incarnation, heartbeat, lastHeardAt: now, suspectedAt: now });
      return;
    }
    if (
      incarnation > seen.incarnation ||
      (incarnation === seen.incarnation && heartbeat > seen.heartbeat)
    ) {
      seen.incarnation = incarnation;
      seen.heartbeat = heartbeat;
      seen.lastHeardAt = now;
    }
  }

  #detect(now: number): void {
    const members = [...this.#table.values()].filter(
      (entry) => entry.status === "alive" || entry.status === "suspect",
    ).length;
    const patience = this.#health.multiplier;
    const staleAfter = this.#settings.suspectAfterMs * sizeScale(members) * patience;
    // Regions other than this one and the suspect that could confirm a suspicion.
    const expected = Math.min(this.#settings.suspicionConfirmations, members - 2);
    for (const entry of [...this.#table.values()]) {
      if (entry.region === this.region) continue;
      const seen = this.#seen.get(entry.region);
      const stale = seen !== undefined && now - seen.lastHeardAt > staleAfter;
      if (!stale) continue;
      if (entry.status === "alive") {
        this.#accuse(entry, "suspect", [this.region], now);
      } else if (entry.status === "suspect") {
        if (!entry.accusers.includes(this.region)) {
          // An independent report: this region's own heartbeat record also went quiet.
          this.#accuse(entry, "suspect", [...entry.accusers, this.region].sort(), now);
          continue;
        }
        const timeout =
          suspicionTimeoutMs(
            entry.accusers.length - 1,
            expected,
            this.#settings.suspicionMinMs,
            this.#settings.suspicionMaxMs,
          ) * patience;
        if (now - (seen?.suspectedAt ?? now) >= timeout) {
          this.#accuse(entry, "dead", entry.accusers, now);
        }
      }
    }
  }

  #accuse(entry: RegionEntry, status: "suspect" | "dead", accusers: string[], now: number): void {
    const accused: RegionEntry = {
      ...entry,
      status,
      accusers,
      changedAt: status === entry.status ? entry.changedAt : now,
    };
    this.#table.set(entry.region, accused);
    this.#note(entry, accused, now);
  }

  /** Records a change worth persisting, and tells the observer of status changes. */
  #note(before: RegionEntry | null, after: RegionEntry, now: number): void {
    if (
      before &&
      before.status === after.status &&
      before.incarnation === after.incarnation &&
      before.accusers.length === after.accusers.length
    ) {
      return;
    }
    this.#revision++;
    if (
      after.status === "suspect" &&
      (before?.status !== "suspect" || before.incarnation !== after.incarnation)
    ) {
      const seen = this.#seen.get(after.region);
      if (seen) seen.suspectedAt = now;
    }
    if (!before || before.status !== after.status || before.incarnation !== after.incarnation) {
      this.#onTransition?.({
        region: after.region,
        from: before?.status ?? null,
        to: after.status,
        incarnation: after.incarnation,
        at: now,
      });
    }
  }

  /** `fanout` random peers that are up (alive, suspect, left), every seed not yet known, and one dead region. */
  #targets(random: () => number): { to: string; counts: boolean }[] {
    const up: string[] = [];
    const down: string[] = [];
    for (const entry of this.#table.values()) {
      if (entry.region === this.region) continue;
      (entry.status === "dead" ? down : up).push(entry.region);
    }
    const targets = sample(up, this.#settings.fanout, random).map((to) => ({
      to,
      // Only a peer believed alive is expected to answer; a suspect's silence is no news.
      counts: this.#table.get(to)?.status !== "suspect",
    }));
    // Joining: every seed not yet known, each round, until it is (a handful of regions at most).
    for (const seed of this.#seeds) {
      if (!this.#table.has(seed)) targets.push({ to: seed, counts: false });
    }
    // Talking to the dead is how a healed partition or a returning region is found again.
    const probe = sample(down, 1, random)[0];
    if (probe !== undefined) targets.push({ to: probe, counts: false });
    return targets;
  }
}

/** Equal lists of hot shards (same shards, same figures), so an unchanged list is not new content. */
function sameHotShards(a: readonly HotShard[], b: readonly HotShard[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (x, i) =>
        x.shard === b[i]?.shard &&
        x.connections === b[i]?.connections &&
        x.rooms === b[i]?.rooms &&
        x.messagesPerSecond === b[i]?.messagesPerSecond,
    )
  );
}

/**
 * The longest a healthy region takes to declare a crashed one dead: the crashed region's last
 * heartbeat may still be relayed for about log2(N) rounds, then the record goes stale after
 * `suspectAfterMs` (scaled), a lone suspicion waits at most `suspicionMaxMs`, and each step
 * waits for the next round. Shared by the simulator's property and the docs.
 */
export function deathDeclaredWithinMs(settings: GossipSettings, regions: number): number {
  const rounds = Math.ceil(Math.log2(Math.max(2, regions))) + 3;
  return (
    settings.suspectAfterMs * sizeScale(regions) +
    settings.suspicionMaxMs +
    rounds * settings.gossipIntervalMs
  );
}

interface Round {
  sentAt: number;
  sent: number;
  answered: number;
}

/** `count` distinct items chosen uniformly (a partial Fisher-Yates shuffle of a copy). */
function sample<T>(items: readonly T[], count: number, random: () => number): T[] {
  const pool = [...items];
  const picked: T[] = [];
  for (let i = 0; i < count && pool.length > 0; i++) {
    const j = Math.floor(random() * pool.length);
    picked.push(pool[j] as T);
    pool[j] = pool[pool.length - 1] as T;
    pool.pop();
  }
  return picked;
}
