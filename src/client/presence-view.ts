import type { LeaveReason, Member, PresenceEvent, User } from "../presence/presence-schema";
import { usersOf } from "../presence/user-view";
import type { ServerExtensionMessage } from "../protocol/extension-messages";

/** A change to the members a client sees, as the SDK reports it. */
export type MemberChange =
  | { type: "join"; member: Member }
  | { type: "update"; member: Member }
  | { type: "status"; member: Member }
  | { type: "leave"; member: Member; reason: LeaveReason };

/** What the view asks of its connection after a message. */
export interface ViewResult {
  changes: MemberChange[];
  /** A sequence number was skipped: ask for a new snapshot (`presence.resync`). */
  resync: boolean;
}

/**
 * A client's copy of a room's presence, kept from the server's extension channel (pure: no
 * socket, no clock). A snapshot arrives first, in pages that share one sequence number; events
 * follow, each numbered one above the last. An event that skips a number means something was
 * missed: the view asks for a new snapshot, and applies it as a difference from what it holds,
 * so a reconnect or a resync reports only what really changed (a member that stayed is no
 * leave and no join).
 */
export class PresenceView {
  private readonly byClient = new Map<number, Member>();
  /** The sequence number of the last snapshot or event applied; null before the first snapshot. */
  private seq: number | null = null;
  /** Pages of a snapshot still arriving, and the events that came meanwhile. */
  private pending: { seq: number; pages: Map<number, Member[]>; count: number } | null = null;
  private early: PresenceEvent[] = [];
  private snapshots = 0;
  /**
   * A resync was asked for and its snapshot has not come yet. Every events frame until then
   * still skips numbers (the view stays at the last number before the gap); asking again for
   * each would cost one more snapshot per frame, so the view asks once per gap. A whole
   * snapshot or a closed socket ends the wait (the server sends frames in order, so any
   * snapshot after the gap covers it; a new socket starts with one).
   */
  private resyncAsked = false;

  /** How many whole snapshots have been applied. */
  get snapshotsApplied(): number {
    return this.snapshots;
  }

  /** Every member, in join order. */
  members(): Member[] {
    return [...this.byClient.values()].sort(
      (a, b) => a.joinedAt - b.joinedAt || a.clientId - b.clientId,
    );
  }

  /** Members grouped by user, in first-join order. */
  users(): User[] {
    return usersOf(this.byClient.values());
  }

  /** True once a whole snapshot has been applied. */
  get ready(): boolean {
    return this.seq !== null;
  }

  /** A message from the server's extension channel. */
  receive(message: ServerExtensionMessage): ViewResult {
    if (message.type === "presence.snapshot") return this.snapshotPage(message);
    if (message.type !== "presence.events") return { changes: [], resync: false };
    if (this.seq === null || this.pending !== null) {
      this.early.push(...message.events); // applied after the snapshot they follow
      return { changes: [], resync: false };
    }
    return this.events(message.events);
  }

  /** The connection closed: the next snapshot is applied as a difference from this view. */
  disconnected(): void {
    this.pending = null;
    this.early = [];
    this.resyncAsked = false;
  }

  private snapshotPage(
    message: Extract<ServerExtensionMessage, { type: "presence.snapshot" }>,
  ): ViewResult {
    const { snapshot, page, pages } = message;
    if (this.pending === null || this.pending.seq !== snapshot.seq)
      this.pending = { seq: snapshot.seq, pages: new Map(), count: pages };
    this.pending.pages.set(page, snapshot.members);
    if (this.pending.pages.size < this.pending.count) return { changes: [], resync: false };
    const members = [...this.pending.pages.values()].flat();
    const seq = this.pending.seq;
    this.pending = null;
    const changes = this.replaceWith(members);
    this.seq = seq;
    this.snapshots++;
    this.resyncAsked = false;
    const early = this.early.filter((event) => event.seq > seq);
    this.early = [];
    const after = this.events(early);
    return { changes: [...changes, ...after.changes], resync: after.resync };
  }

  private events(events: readonly PresenceEvent[]): ViewResult {
    const changes: MemberChange[] = [];
    for (const event of [...events].sort((a, b) => a.seq - b.seq)) {
      const seq = this.seq as number;
      if (event.seq <= seq) continue; // already in the snapshot, or a repeat
      if (event.seq > seq + 1) {
        const resync = !this.resyncAsked;
        this.resyncAsked = true;
        return { changes, resync };
      }
      this.seq = event.seq;
      const change = this.apply(event);
      if (change) changes.push(change);
    }
    return { changes, resync: false };
  }

  private apply(event: PresenceEvent): MemberChange | null {
    switch (event.type) {
      case "member.join":
      case "member.update":
      case "member.status": {
        const known = this.byClient.has(event.member.clientId);
        this.byClient.set(event.member.clientId, event.member);
        if (!known) return { type: "join", member: event.member };
        return { type: event.type === "member.status" ? "status" : "update", member: event.member };
      }
      case "member.leave":
        if (!this.byClient.delete(event.member.clientId)) return null;
        return { type: "leave", member: event.member, reason: event.reason };
      default:
        return null; // user events: the users view is derived from the members
    }
  }

  /** Applies a whole snapshot as the difference from the members held. */
  private replaceWith(members: readonly Member[]): MemberChange[] {
    const changes: MemberChange[] = [];
    const next = new Map(members.map((member) => [member.clientId, member]));
    for (const [clientId, held] of this.byClient) {
      // Gone while this client was away: why is not known any more.
      if (!next.has(clientId)) changes.push({ type: "leave", member: held, reason: "timeout" });
    }
    for (const member of members) {
      const held = this.byClient.get(member.clientId);
      if (!held) changes.push({ type: "join", member });
      else if (held.status !== member.status || held.region !== member.region)
        changes.push({ type: "status", member });
      else if (JSON.stringify(held.state) !== JSON.stringify(member.state))
        changes.push({ type: "update", member });
    }
    this.byClient.clear();
    for (const [clientId, member] of next) this.byClient.set(clientId, member);
    return changes;
  }
}
