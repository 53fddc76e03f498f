import { homeAndBackup } from "./home-region";

export interface LinkSettings {
  /** Anti-entropy period of a replica with local clients (ms). */
  antiEntropyMs: number;
  /** A replica without local clients for this long leaves (unless it is the home or backup) (ms). */
  idleLeaveMs: number;
  /** A peer not heard from for this long is no longer sent to (ms): it left or its room went idle. */
  peerExpiryMs: number;
  /** After an update with a gap, anti-entropy with its sender at most once per this (ms; default 250). */
  gapRepairMs?: number;
}

/** `replication.gapRepairMs`'s default, for links built without it. */
const DEFAULT_GAP_REPAIR_MS = 250;

/** What the link wants sent now: anti-entropy with some regions, and the leave handshake. */
export interface LinkActions {
  syncWith: string[];
  /** Send the home a leaving sync (with what it lacks, from its state vector `homeVector`). */
  leave?: { home: string; homeVector: Uint8Array };
}

type LinkState =
  | { kind: "dormant" }
  | { kind: "active" }
  /** Idle: a sync went to the home; its answer says what it lacks. */
  | { kind: "leaving"; home: string }
  /** The leaving sync went out; the home's answer confirms. */
  | { kind: "confirming"; home: string };

/**
 * One room's replica set as one region sees it (a pure state machine: time and the set of
 * regions that may serve come in as arguments). It knows the peers (regions heard from lately,
 * plus the home and backup), when anti-entropy is due, and the replica's lifecycle: dormant,
 * active while it has local clients (it joins by syncing with the home, which answers with the
 * replica set), and leaving once idle, which it does only after the home confirmed it holds
 * everything this replica has. The home's replica directory is the same `heard` map: every
 * active replica syncs with the home each period, and the home hands that list out.
 */
export class RoomLink {
  private readonly heard = new Map<string, number>();
  private state: LinkState = { kind: "dormant" };
  private connections = 0;
  private idleSince: number | null = null;
  private syncDueAt: number | null = null;
  private candidates: ReadonlySet<string> = new Set();
  private roles: { home: string | null; backup: string | null } = { home: null, backup: null };
  /** When each peer was last asked for anti-entropy because its update had a gap. */
  private readonly gapRepairs = new Map<string, number>();
  /** Other regions whose members this replica holds (`noteMemberRegions`). */
  private owners: ReadonlySet<string> = new Set();

  constructor(
    readonly room: string,
    readonly region: string,
    private readonly settings: LinkSettings,
  ) {}

  get active(): boolean {
    return this.state.kind !== "dormant";
  }

  get home(): string | null {
    return this.roles.home;
  }

  /** The local connection count changed: the first one makes the replica join (sync at once). */
  noteConnections(count: number, nowMs: number): void {
    this.connections = count;
    if (count > 0) {
      this.idleSince = null;
      if (this.state.kind !== "active") {
        if (this.state.kind === "dormant") this.syncDueAt = nowMs;
        this.state = { kind: "active" };
      }
    } else if (this.idleSince === null) {
      this.idleSince = nowMs;
    }
  }

  /**
   * This region's own members changed (a batch carries their records). A replica with no local
   * connection does this too: a room loaded after a restart starts the graces of the members it
   * stored, and ends them later. Without anti-entropy a lost batch of those records would never
   * be repaired (peers would keep the members for good), so a dormant replica joins the set again
   * (syncing at once), and stays for `idleLeaveMs` after the change (found by the simulator).
   */
  noteLocalChanges(nowMs: number): void {
    if (this.connections === 0) this.idleSince = nowMs;
    if (this.state.kind !== "active") {
      if (this.state.kind === "dormant") this.syncDueAt = nowMs;
      this.state = { kind: "active" };
    }
  }

  /**
   * The other regions whose members this replica holds now. A member's record comes only from
   * its own region, so a member whose leave was lost (in a partition, say) stays here until that
   * region's anti-entropy says otherwise; but a region whose last member left has no reason to
   * keep syncing, and rests. So each period this replica asks (syncs with) every such region it
   * has not heard from for `peerExpiryMs`, a dormant one too: the home and backup rest without
   * clients of their own, yet must hold the room's presence (found by the simulator: ghosts
   * after a partition longer than `idleLeaveMs`). The driver calls this after every change.
   */
  noteMemberRegions(regions: readonly string[], nowMs: number): void {
    this.owners = new Set(regions.filter((region) => region !== this.region));
    if (this.active) return;
    // Dormant: the home and backup keep a period's timer while there may be someone to ask;
    // another dormant replica is out of the set, and may be stale anyway.
    const home = this.roles.home;
    const holds = this.region === home || this.region === this.roles.backup;
    if (this.owners.size === 0 || !holds) this.syncDueAt = null;
    else this.syncDueAt ??= nowMs + this.settings.antiEntropyMs;
  }

  /** Owners of members held here not heard from lately, that may serve: their syncs are due. */
  private silentOwners(nowMs: number): string[] {
    return [...this.owners].filter((region) => {
      const heard = this.heard.get(region);
      const recent = heard !== undefined && heard + this.settings.peerExpiryMs >= nowMs;
      return !recent && this.candidates.has(region);
    });
  }

  /**
   * The regions that may serve changed (or not): the home and backup follow by rendezvous. A
   * region that came back, or a home that moved, gets anti-entropy at once.
   */
  setCandidates(candidates: readonly string[], nowMs: number): void {
    const next = new Set(candidates);
    const roles = homeAndBackup(this.room, candidates);
    const returned = [...next].some((region) => !this.candidates.has(region));
    if (this.active && (returned || roles.home !== this.roles.home)) this.syncDueAt = nowMs;
    this.candidates = next;
    this.roles = roles;
  }

  /** Where batches go: every peer heard from lately, and the home and backup, that may serve. */
  targets(nowMs: number): string[] {
    const targets = new Set<string>();
    for (const [region, at] of this.heard) {
      if (at + this.settings.peerExpiryMs >= nowMs) targets.add(region);
      else this.heard.delete(region);
    }
    if (this.roles.home !== null) targets.add(this.roles.home);
    if (this.roles.backup !== null) targets.add(this.roles.backup);
    targets.delete(this.region);
    return [...targets].filter((region) => this.candidates.has(region)).sort();
  }

  /** The regions this replica would list as holding the room (itself included while active). */
  replicaSet(nowMs: number): string[] {
    const set = new Set(this.targets(nowMs));
    if (this.active) set.add(this.region);
    return [...set].sort();
  }

  /**
   * Updates from peers wait for content they build on (a batch lost or overtaken): ask `from`
   * for anti-entropy now, rather than at the next period, unless it was asked within
   * `gapRepairMs`. One round trip repairs a lost batch.
   */
  repairGap(from: string, nowMs: number): boolean {
    const last = this.gapRepairs.get(from);
    const every = this.settings.gapRepairMs ?? DEFAULT_GAP_REPAIR_MS;
    if (last !== undefined && nowMs - last < every) return false;
    this.gapRepairs.set(from, nowMs);
    return true;
  }

  /** A message from `from` shows it holds a replica (unless it is leaving). */
  heardFrom(from: string, nowMs: number, leaving = false): void {
    if (leaving) this.heard.delete(from);
    else if (from !== this.region) this.heard.set(from, nowMs);
  }

  /** A peer's list of the replica set: each is a peer now (the home's list is the directory). */
  learnPeers(peers: readonly string[], nowMs: number): void {
    for (const region of peers) if (region !== this.region) this.heard.set(region, nowMs);
  }

  /**
   * A sync arrived from `from` (its state vector `vector`, its replica list `peers`). Moves the
   * leave handshake on: the home's state vector tells what to send with the leaving sync, and
   * its answer to that confirms the leave when it holds everything (`covered`) and lists this
   * replica no more.
   */
  onSync(
    from: string,
    vector: Uint8Array,
    peers: readonly string[] | undefined,
    covered: boolean,
  ): LinkActions {
    if (this.state.kind === "leaving" && from === this.state.home) {
      this.state = { kind: "confirming", home: from };
      return { syncWith: [], leave: { home: from, homeVector: vector } };
    }
    if (this.state.kind === "confirming" && from === this.state.home) {
      if (covered && peers !== undefined && !peers.includes(this.region)) {
        this.state = { kind: "dormant" };
        this.syncDueAt = null;
      } else {
        this.state = { kind: "active" }; // not yet: the next period tries again
      }
    }
    return { syncWith: [] };
  }

  /** Work due by `nowMs`: anti-entropy with every target, or the first step of leaving. */
  tick(nowMs: number): LinkActions {
    if (this.syncDueAt === null || nowMs < this.syncDueAt) return { syncWith: [] };
    this.syncDueAt = nowMs + this.settings.antiEntropyMs;
    if (!this.active) return { syncWith: this.silentOwners(nowMs).sort() };
    const targets = this.targets(nowMs);
    const home = this.roles.home;
    const isHomeOrBackup = this.region === home || this.region === this.roles.backup;
    const idle =
      this.connections === 0 &&
      this.idleSince !== null &&
      this.idleSince + this.settings.idleLeaveMs <= nowMs;
    if (idle && (isHomeOrBackup || home === null)) {
      // Every replica sends to the home and backup anyway: they need no leave, only rest.
      this.state = { kind: "dormant" };
      this.syncDueAt = null;
    } else if (idle && home !== null) {
      this.state = { kind: "leaving", home };
    } else if (this.state.kind !== "active" && this.connections > 0) {
      this.state = { kind: "active" };
    }
    const pulls = this.silentOwners(nowMs).filter((region) => !targets.includes(region));
    return { syncWith: [...targets, ...pulls.sort()] };
  }

  /**
   * Whether the shell may drop this link (and build a new one when the room next needs it):
   * dormant, nothing scheduled, and no peer heard from within `peerExpiryMs`. A dormant home
   * still holds the room's replica directory (its `heard` map, handed out in its syncs): a link
   * dropped and rebuilt on every message would hand out only the peers heard since, and active
   * replicas would never learn of each other (found by the simulator).
   */
  forgettable(nowMs: number): boolean {
    if (this.active || this.syncDueAt !== null) return false;
    for (const at of this.heard.values())
      if (at + this.settings.peerExpiryMs >= nowMs) return false;
    return true;
  }

  /** When `tick` next has work (Unix ms), or null (dormant, with no other region's members to check). */
  get nextTickAt(): number | null {
    return this.syncDueAt;
  }
}
