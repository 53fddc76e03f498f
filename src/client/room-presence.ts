import type { Awareness } from "y-protocols/awareness";
import type { LeaveReason, Member, User } from "../presence/presence-schema";
import { Emitter } from "./emitter";
import { type MemberChange, PresenceView } from "./presence-view";

/** A member's own state: what `enter`/`update` set (a JSON object). */
export type PresenceState = Record<string, unknown>;

export type PresenceEvents = {
  /** A member arrived (after the first snapshot: each member present then is a join). */
  join: (member: Member) => void;
  /** A member's state changed. */
  update: (member: Member) => void;
  /** A member's status (`present` / `reconnecting`) or region changed. */
  status: (member: Member) => void;
  leave: (member: Member, reason: LeaveReason) => void;
  /** Any of the above, after they were applied: the moment to re-render a list. */
  change: (members: readonly Member[]) => void;
  /** The first snapshot arrived (even an empty room's): `members()` is now the room's. */
  ready: (members: readonly Member[]) => void;
};

/**
 * A room's presence, as apps use it (after Ably's `presence.enter/update/leave/get/subscribe`):
 * this client's own state goes out as its Yjs awareness entry; who is here comes from the
 * server's presence events, with the identity the server knows (userId, region, status).
 */
export class RoomPresence extends Emitter<PresenceEvents> {
  private readonly view = new PresenceView();

  constructor(
    private readonly awareness: Awareness,
    /** Asks the server for a new snapshot after a missed event. */
    private readonly requestResync: () => void,
  ) {
    super();
  }

  /** This client's awareness clientID: its `clientId` among the members. */
  get clientId(): number {
    return this.awareness.clientID;
  }

  /** True once the first snapshot arrived: until then `members()` is empty, not "nobody". */
  get ready(): boolean {
    return this.view.ready;
  }

  /** @internal How many snapshots the view has applied (the room watches for a reconnect's). */
  get snapshotsApplied(): number {
    return this.view.snapshotsApplied;
  }

  /** Becomes a member with this state (or replaces the state if already one). */
  enter(state: PresenceState = {}): void {
    this.awareness.setLocalState({ ...state });
  }

  /** Merges fields into this member's state (entering if not yet a member). */
  update(fields: PresenceState): void {
    const current = this.awareness.getLocalState() ?? {};
    this.awareness.setLocalState({ ...current, ...fields });
  }

  /** Stops being a member (others see a leave with reason `left`); stays subscribed. */
  leave(): void {
    this.awareness.setLocalState(null);
  }

  /** This client's own state, or null when not a member. */
  get state(): PresenceState | null {
    return this.awareness.getLocalState() as PresenceState | null;
  }

  /** Every member, this client included once the server has it, in join order. */
  members(): Member[] {
    return this.view.members();
  }

  /** Every member but this client. */
  others(): Member[] {
    return this.view.members().filter((member) => member.clientId !== this.awareness.clientID);
  }

  /** This client's member as the server sees it, or null. */
  me(): Member | null {
    return (
      this.view.members().find((member) => member.clientId === this.awareness.clientID) ?? null
    );
  }

  /** Members grouped by user (two tabs of one user are one user). */
  users(): User[] {
    return this.view.users();
  }

  /** @internal A message from the extension channel. */
  receive(message: Parameters<PresenceView["receive"]>[0]): void {
    const wasReady = this.view.ready;
    const { changes, resync } = this.view.receive(message);
    if (resync) this.requestResync();
    this.report(changes);
    if (!wasReady && this.view.ready) this.emit("ready", this.view.members());
  }

  /** @internal The socket closed: the next snapshot is applied as a difference. */
  disconnected(): void {
    this.view.disconnected();
  }

  /** @internal */
  dispose(): void {
    this.removeAllListeners();
  }

  private report(changes: readonly MemberChange[]): void {
    if (changes.length === 0) return;
    for (const change of changes) {
      if (change.type === "leave") this.emit("leave", change.member, change.reason);
      else this.emit(change.type, change.member);
    }
    this.emit("change", this.view.members());
  }
}
