import { homeAndBackup } from "./home-region";

export interface LinkSettings {
  /** Anti-entropy period of a replica with local clients (ms). */
  antiEntropyMs: number;
  /** A replica without local clients for this long leaves (unless it is the home or backup) (ms). */
  idleLeaveMs: number;
  /** A peer not heard from for this long is no longer sent to (ms): it left or its room went idle. */
  peerExpiryMs: number;
}

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
    if (!this.active) return { syncWith: [] };
    if (this.syncDueAt === null || nowMs < this.syncDueAt) return { syncWith: [] };
    this.syncDueAt = nowMs + this.settings.antiEntropyMs;
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
    return { syncWith: targets };
  }

  /** When `tick` next has work (Unix ms), or null while dormant. */
  get nextTickAt(): number | null {
    return this.active ? this.syncDueAt : null;
  }
}
