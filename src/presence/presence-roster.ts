import type { ConnectionIdentity } from "../auth/authenticate";
import type {
  LeaveReason,
  Member,
  PresenceEvent,
  PresenceEventType,
  PresenceSnapshot,
  User,
} from "./presence-schema";
import type { PresenceStore } from "./presence-store";
import { userOf, usersOf } from "./user-view";

/** The connection a member's client is on, as the room core knows it. */
export interface PresenceOwner {
  connectionId: string;
  region: string;
  identity: ConnectionIdentity;
}

/** A live connection's owned awareness entries (state as JSON text), when a room is loaded with sockets still open. */
export interface LiveConnection extends PresenceOwner {
  clients: ReadonlyArray<{ clientId: number; json: string }>;
}

export interface PresenceOptions {
  /** How long a member whose connection dropped stays, `reconnecting` (ms; 0: it leaves at once). */
  graceMs: number;
  /** How long a state update may wait in memory before it is written to the history (ms). */
  historyFlushMs: number;
  /**
   * How long a member handed over with its room (a resize) stays `present` while its client
   * reconnects, before its grace starts (ms; absent or 0: the grace starts at once).
   */
  movedGraceMs?: number;
  /** Event types queued for the webhook (none when it is off). */
  webhookEvents?: ReadonlySet<PresenceEventType>;
  /**
   * In a room with more members than this, state updates are held for `coalesceWindowMs` and
   * sent as one event per member with its latest state: a crowd moving at once is one frame,
   * not one per move. Joins, status changes and leaves are never held.
   */
  coalesceAboveMembers?: number;
  coalesceWindowMs?: number;
  /**
   * This replica's region. Members of other regions (replicated) are mirrored as their owner
   * sets them: no grace runs for them here, and they are not stored (peers resend them).
   * Absent: every member is local.
   */
  region?: string;
}

/**
 * Sequence numbers of a roster loaded at millisecond `t` start at `t × 1024`: above every
 * number an earlier load handed out, although updates (cursor moves) are never written, as
 * long as a room produced fewer than 1024 events a millisecond. Below 2^53 until the year 2248.
 */
export const SEQ_STEPS_PER_MS = 2 ** 10;

/**
 * The presence layer of one room: members (one per announced awareness clientID), the users
 * view, the disconnect grace and the event stream. Pure: time is passed in, storage is the
 * injected `PresenceStore`, and nothing here knows about sockets.
 *
 * Awareness (what stock clients render) is not delayed by any of this: the room core removes
 * a closed connection's awareness entries at once. Presence is "who is here", and there a
 * dropped connection gets a grace in which the same client can come back unnoticed.
 */
export class PresenceRoster {
  private readonly members = new Map<number, Member>();
  /** Members handed over with the room, still `present`, and when their client must be back by. */
  private readonly awaitingMove = new Map<number, number>();
  /** Each user's members' clientIDs: a join or leave looks at one user, not the whole room. */
  private readonly byUser = new Map<string, Set<number>>();
  /** Each member's state as the JSON text it arrived in: a repeat is found by comparing text, not by parsing. */
  private readonly jsonOf = new Map<number, string>();
  private seq: number;
  /** Events of the current call, in order. */
  private events: PresenceEvent[] = [];
  /** Membership changes of the current call, written once at its end. */
  private upserts = new Map<number, Member>();
  private removals = new Set<number>();
  private membershipEvents: PresenceEvent[] = [];
  /** The newest not-yet-written update of each member, and since when the oldest has waited. */
  private readonly pendingUpdates = new Map<number, PresenceEvent>();
  private pendingSince: number | null = null;
  /** In a large room, the members whose state changed in the current window (not yet evented). */
  private readonly held = new Set<number>();
  private heldSince: number | null = null;
  /**
   * The current call mirrors another region's change: its events are not queued for the
   * webhook, which the region where the change happened posts (once, not once per region).
   */
  private mirroring = false;

  private constructor(
    private readonly room: string,
    private readonly store: PresenceStore,
    private readonly options: PresenceOptions,
    nowMs: number,
  ) {
    const stored = store.load(room);
    this.seq = Math.max(stored.seq, Math.floor(nowMs) * SEQ_STEPS_PER_MS);
    for (const member of stored.members) this.add(member);
  }

  /**
   * Loads a room's presence. Stored members whose connection is still open (the shard woke
   * from hibernation) stay present with their live state; present ones whose connection is gone
   * (the shard restarted) start their grace now; live entries the store lacks join.
   */
  static load(
    room: string,
    store: PresenceStore,
    options: PresenceOptions,
    nowMs: number,
    live: readonly LiveConnection[],
    arriving: ReadonlySet<number> = new Set(),
  ): { roster: PresenceRoster; events: PresenceEvent[] } {
    const roster = new PresenceRoster(room, store, options, nowMs);
    const liveOwner = new Map<number, LiveConnection>();
    for (const connection of live) {
      for (const client of connection.clients) liveOwner.set(client.clientId, connection);
    }
    for (const member of [...roster.members.values()]) {
      const owner = liveOwner.get(member.clientId);
      if (owner && owner.connectionId === member.connectionId) continue;
      if (member.status !== "present") continue;
      // Handed over with its room: its client is reconnecting to this shard right now.
      const moved = options.movedGraceMs ?? 0;
      if (arriving.has(member.clientId) && moved > 0)
        roster.awaitingMove.set(member.clientId, nowMs + moved);
      else roster.startGrace(member, nowMs);
    }
    const events = roster.finish();
    for (const connection of live) {
      for (const client of connection.clients) {
        const member = roster.members.get(client.clientId);
        if (member && member.connectionId === connection.connectionId) {
          member.state = parseState(client.json);
          roster.jsonOf.set(client.clientId, client.json);
        } else {
          events.push(...roster.announce(connection, client.clientId, client.json, nowMs));
        }
      }
    }
    events.push(...roster.expire(nowMs)); // graces that ran out while the room was unloaded
    return { roster, events };
  }

  /** The room's presence version: the sequence number of its latest event. */
  get version(): number {
    return this.seq;
  }

  get memberCount(): number {
    return this.members.size;
  }

  /**
   * A connection's client set its awareness state (`json`: a JSON object's text, as it arrived):
   * a join, a takeover within the grace, or an update.
   */
  announce(owner: PresenceOwner, clientId: number, json: string, nowMs: number): PresenceEvent[] {
    const existing = this.members.get(clientId);
    if (existing === undefined) {
      this.join(owner, clientId, json, nowMs);
    } else if (existing.connectionId === owner.connectionId) {
      if (!this.sameState(existing, json)) {
        this.setState(existing, json);
        existing.updatedAt = nowMs;
        this.recordUpdate(existing, nowMs);
      }
    } else if (
      existing.userId === owner.identity.userId &&
      (existing.status === "reconnecting" ||
        existing.region !== owner.region ||
        this.awaitingMove.has(clientId))
    ) {
      // Its own connection coming back, here or from another region: no leave, no join.
      this.takeOver(existing, owner, json, nowMs);
    } else {
      // Another user's stale member under a reused clientID: it cannot come back now.
      this.leave(existing, "timeout", nowMs);
      this.join(owner, clientId, json, nowMs);
    }
    return this.finish();
  }

  /** A client set its state to `null`: it leaves at once with `left`. */
  withdraw(clientId: number, nowMs: number): PresenceEvent[] {
    const member = this.members.get(clientId);
    if (member) this.leave(member, "left", nowMs);
    return this.finish();
  }

  /**
   * A connection ended. Cleanly (the client said goodbye): its members leave with `closed`.
   * Abruptly (network drop, crash, or a close the server forced): they turn `reconnecting`
   * for the grace, and leave with `timeout` when it ends.
   */
  connectionGone(connectionId: string, clean: boolean, nowMs: number): PresenceEvent[] {
    for (const member of [...this.members.values()]) {
      if (member.connectionId !== connectionId || member.status !== "present") continue;
      if (clean) this.leave(member, "closed", nowMs);
      else this.startGrace(member, nowMs);
    }
    return this.finish();
  }

  /**
   * Another region's member as its owner holds it now (a copy is kept), or `null` when it left
   * there: join, update, status or leave events as its record differs from the one held.
   */
  applyRemote(
    clientId: number,
    member: Member | null,
    reason: LeaveReason,
    nowMs: number,
  ): PresenceEvent[] {
    this.mirroring = true;
    const existing = this.members.get(clientId);
    if (member === null) {
      if (existing) this.leave(existing, reason, nowMs);
      return this.finish();
    }
    const json = JSON.stringify(member.state);
    if (existing === undefined || existing.userId !== member.userId) {
      if (existing) this.leave(existing, "timeout", nowMs);
      const before = this.userNow(member.userId);
      const copy = { ...member };
      this.add(copy);
      this.jsonOf.set(clientId, json);
      this.recordMembership({ type: "member.join", member: copy }, nowMs, copy);
      this.recordUserChange(before, member.userId, nowMs, "closed");
      return this.finish();
    }
    const before = this.userNow(member.userId);
    const moved =
      existing.status !== member.status ||
      existing.connectionId !== member.connectionId ||
      existing.region !== member.region;
    const changed = !this.sameState(existing, json);
    Object.assign(existing, member);
    if (member.reconnectingUntil === undefined) delete existing.reconnectingUntil;
    this.jsonOf.set(clientId, json);
    if (moved) this.recordMembership({ type: "member.status", member: existing }, nowMs, existing);
    if (changed) this.recordUpdate(existing, nowMs);
    this.recordUserChange(before, member.userId, nowMs, "closed");
    return this.finish();
  }

  /** A region was declared dead: each of its members leaves with `region_lost`. */
  regionLost(region: string, nowMs: number): PresenceEvent[] {
    this.mirroring = true;
    for (const member of [...this.members.values()]) {
      if (member.region === region) this.leave(member, "region_lost", nowMs);
    }
    return this.finish();
  }

  /** One member as held now (a copy), if present. */
  member(clientId: number): Member | undefined {
    const member = this.members.get(clientId);
    return member ? { ...member } : undefined;
  }

  /** The clientIDs of this region's members. */
  localClientIds(): number[] {
    return [...this.members.values()].filter((m) => this.isLocal(m)).map((m) => m.clientId);
  }

  /** True when `member` belongs to this replica's region (its grace runs here, it is stored here). */
  isLocal(member: Pick<Member, "region">): boolean {
    return this.options.region === undefined || member.region === this.options.region;
  }

  /** The alarm: ends graces that ran out, and writes updates that waited long enough. */
  expire(nowMs: number): PresenceEvent[] {
    for (const [clientId, until] of [...this.awaitingMove]) {
      if (until > nowMs) continue;
      this.awaitingMove.delete(clientId);
      const member = this.members.get(clientId);
      if (member?.status === "present") this.startGrace(member, nowMs); // not back after a move
    }
    for (const member of [...this.members.values()]) {
      if (!this.isLocal(member)) continue; // its own region ends its grace
      if (member.reconnectingUntil !== undefined && member.reconnectingUntil <= nowMs)
        this.leave(member, "timeout", nowMs);
    }
    if (this.heldSince !== null && this.heldSince + (this.options.coalesceWindowMs ?? 0) <= nowMs)
      this.releaseHeld(nowMs);
    if (this.pendingSince !== null && this.pendingSince + this.options.historyFlushMs <= nowMs)
      this.flushUpdates();
    return this.finish();
  }

  /** True when `events` include one the webhook posts: the shell's alarm should run now. */
  postsAny(events: readonly PresenceEvent[]): boolean {
    const posted = this.options.webhookEvents;
    return posted !== undefined && events.some((e) => posted.has(e.type));
  }

  /** When held or waiting updates are due (Unix ms), or null: cheap enough for every frame. */
  nextFlush(): number | null {
    const write =
      this.pendingSince === null ? null : this.pendingSince + this.options.historyFlushMs;
    const send =
      this.heldSince === null ? null : this.heldSince + (this.options.coalesceWindowMs ?? 0);
    if (write === null) return send;
    return send === null ? write : Math.min(write, send);
  }

  /** When `expire` next has work (Unix ms), or null: the shell sets its alarm for it. */
  nextDeadline(): number | null {
    let next = this.nextFlush();
    for (const until of this.awaitingMove.values()) if (next === null || until < next) next = until;
    for (const member of this.members.values()) {
      const until = member.reconnectingUntil;
      if (!this.isLocal(member)) continue;
      if (until !== undefined && (next === null || until < next)) next = until;
    }
    return next;
  }

  /** Writes every waiting update now (the room is being unloaded). */
  flush(): void {
    this.releaseHeld(this.heldSince ?? 0);
    this.flushUpdates();
    this.finish();
  }

  snapshot(): PresenceSnapshot {
    const members = this.memberList();
    return { seq: this.seq, members, users: usersOf(members) };
  }

  /** The regions of the members held (no copy of them: replication asks this on every message). */
  regions(): Set<string> {
    const regions = new Set<string>();
    for (const member of this.members.values()) regions.add(member.region);
    return regions;
  }

  memberList(): Member[] {
    return [...this.members.values()]
      .sort((a, b) => a.joinedAt - b.joinedAt || a.clientId - b.clientId)
      .map((m) => ({ ...m }));
  }

  private join(owner: PresenceOwner, clientId: number, json: string, nowMs: number): void {
    const before = this.userNow(owner.identity.userId);
    const { identity } = owner;
    const member: Member = {
      clientId,
      userId: identity.userId,
      ...(identity.name !== undefined ? { name: identity.name } : {}),
      ...(identity.user !== undefined ? { user: identity.user } : {}),
      connectionId: owner.connectionId,
      region: owner.region,
      joinedAt: nowMs,
      updatedAt: nowMs,
      status: "present",
      state: parseState(json),
    };
    this.add(member);
    this.jsonOf.set(clientId, json);
    this.recordMembership({ type: "member.join", member }, nowMs, member);
    this.recordUserChange(before, identity.userId, nowMs, "closed");
  }

  private takeOver(member: Member, owner: PresenceOwner, json: string, nowMs: number): void {
    const before = this.userNow(member.userId);
    // A member back after its room moved shards was present all along: no status event.
    const seamless =
      this.awaitingMove.delete(member.clientId) &&
      member.status === "present" &&
      member.region === owner.region;
    member.connectionId = owner.connectionId;
    member.region = owner.region;
    member.status = "present";
    delete member.reconnectingUntil;
    member.updatedAt = nowMs;
    const changed = !this.sameState(member, json);
    if (changed) this.setState(member, json);
    if (!seamless) this.recordMembership({ type: "member.status", member }, nowMs, member);
    else this.upserts.set(member.clientId, member); // its new connection is written
    if (changed) this.recordUpdate(member, nowMs);
    this.recordUserChange(before, member.userId, nowMs, "closed");
  }

  private sameState(member: Member, json: string): boolean {
    let known = this.jsonOf.get(member.clientId);
    if (known === undefined) {
      // Loaded from storage: its text was not kept, so it is rebuilt once.
      known = JSON.stringify(member.state);
      this.jsonOf.set(member.clientId, known);
    }
    return known === json;
  }

  private setState(member: Member, json: string): void {
    member.state = parseState(json);
    this.jsonOf.set(member.clientId, json);
  }

  private startGrace(member: Member, nowMs: number): void {
    if (this.options.graceMs <= 0) {
      this.leave(member, "timeout", nowMs);
      return;
    }
    const before = this.userNow(member.userId);
    member.status = "reconnecting";
    member.reconnectingUntil = nowMs + this.options.graceMs;
    member.updatedAt = nowMs;
    this.recordMembership({ type: "member.status", member }, nowMs, member);
    this.recordUserChange(before, member.userId, nowMs, "closed");
  }

  private leave(member: Member, reason: LeaveReason, nowMs: number): void {
    this.awaitingMove.delete(member.clientId);
    const before = this.userNow(member.userId);
    this.members.delete(member.clientId);
    const ofUser = this.byUser.get(member.userId);
    ofUser?.delete(member.clientId);
    if (ofUser?.size === 0) this.byUser.delete(member.userId);
    this.jsonOf.delete(member.clientId);
    this.pendingUpdates.delete(member.clientId);
    this.upserts.delete(member.clientId);
    this.removals.add(member.clientId);
    this.recordMembership({ type: "member.leave", member, reason }, nowMs, null);
    this.recordUserChange(before, member.userId, nowMs, reason);
  }

  /** Emits the user-level event that a member change caused, if any. */
  private recordUserChange(
    before: User | null,
    userId: string,
    nowMs: number,
    leaveReason: LeaveReason,
  ): void {
    const after = this.userNow(userId);
    if (before === null && after !== null) {
      this.recordMembership({ type: "user.join", user: after }, nowMs, null);
    } else if (before !== null && after === null) {
      this.recordMembership({ type: "user.leave", user: before, reason: leaveReason }, nowMs, null);
    } else if (before !== null && after !== null) {
      if (before.status !== after.status)
        this.recordMembership({ type: "user.status", user: after }, nowMs, null);
      else if (before.connections !== after.connections)
        this.recordMembership({ type: "user.update", user: after }, nowMs, null);
    }
  }

  private add(member: Member): void {
    this.members.set(member.clientId, member);
    let ofUser = this.byUser.get(member.userId);
    if (!ofUser) {
      ofUser = new Set();
      this.byUser.set(member.userId, ofUser);
    }
    ofUser.add(member.clientId);
  }

  private userNow(userId: string): User | null {
    return userOf(
      userId,
      [...(this.byUser.get(userId) ?? [])].flatMap((clientId) => {
        const member = this.members.get(clientId);
        return member ? [member] : [];
      }),
    );
  }

  /** A membership event: emitted now, and written to the store (with the member row) at the end of the call. */
  private recordMembership(
    event: DistributiveOmit<PresenceEvent, "seq" | "at">,
    nowMs: number,
    upsert: Member | null,
  ): void {
    // The event carries the member's whole record, its latest state included: an update
    // still held for it would only repeat an older one after this.
    if ("member" in event) this.held.delete(event.member.clientId);
    const full = this.next(event, nowMs);
    this.membershipEvents.push(full);
    if (upsert) {
      this.removals.delete(upsert.clientId);
      this.upserts.set(upsert.clientId, upsert);
    }
  }

  /** An update: emitted now (or, in a large room, at the end of the window); written to the history later, coalesced per member. */
  private recordUpdate(member: Member, nowMs: number): void {
    const limit = this.options.coalesceAboveMembers;
    if (limit !== undefined && this.members.size > limit) {
      this.held.add(member.clientId);
      if (this.heldSince === null) this.heldSince = nowMs;
      return;
    }
    this.emitUpdate(member, nowMs);
  }

  private emitUpdate(member: Member, nowMs: number): void {
    this.pendingUpdates.set(member.clientId, this.next({ type: "member.update", member }, nowMs));
    if (this.pendingSince === null) this.pendingSince = nowMs;
  }

  /** Ends the coalescing window: one update per member that changed, with its latest state. */
  private releaseHeld(nowMs: number): void {
    for (const clientId of this.held) {
      const member = this.members.get(clientId);
      if (member) this.emitUpdate(member, nowMs);
    }
    this.held.clear();
    this.heldSince = null;
  }

  private next(event: DistributiveOmit<PresenceEvent, "seq" | "at">, nowMs: number): PresenceEvent {
    this.seq++;
    // A copy of the member: its record keeps changing after the event is out. A state is never
    // changed in place (each update is a new object), so a shallow copy is enough.
    const full = {
      ...event,
      ...("member" in event ? { member: { ...event.member } } : {}),
      seq: this.seq,
      at: nowMs,
    } as PresenceEvent;
    this.events.push(full);
    return full;
  }

  private flushUpdates(): void {
    const updates = [...this.pendingUpdates.values()];
    this.pendingUpdates.clear();
    this.pendingSince = null;
    for (const update of updates) {
      if (update.type === "member.update" && this.members.has(update.member.clientId))
        this.upserts.set(
          update.member.clientId,
          this.members.get(update.member.clientId) as Member,
        );
    }
    this.membershipEvents.push(...updates);
  }

  /** Ends a call: one store write for its membership changes, and the events for the caller. */
  private finish(): PresenceEvent[] {
    if (this.membershipEvents.length > 0 || this.upserts.size > 0 || this.removals.size > 0) {
      // Waiting updates ride along with any write, so the history stays in sequence order.
      if (this.pendingUpdates.size > 0 && this.membershipEvents.length > 0) this.flushUpdates();
      // Only this region's members are stored: a replica that restarts hears the others' again.
      const upserts = [...this.upserts.values()];
      const local = upserts.filter((m) => this.isLocal(m));
      const remote = upserts.filter((m) => !this.isLocal(m)).map((m) => m.clientId);
      this.store.write(this.room, {
        upsert: local.map((m) => ({ ...m })),
        remove: [...this.removals, ...remote],
        seq: this.seq,
        history: [...this.membershipEvents].sort((a, b) => a.seq - b.seq),
        outbox: this.mirroring
          ? []
          : this.membershipEvents.filter((e) => this.options.webhookEvents?.has(e.type)),
      });
    }
    this.mirroring = false;
    this.upserts = new Map();
    this.removals = new Set();
    this.membershipEvents = [];
    const events = this.events;
    this.events = [];
    return events;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function parseState(json: string): Record<string, unknown> {
  return JSON.parse(json) as Record<string, unknown>; // checked to be a JSON object by the awareness codec
}
