import type { Member, PresenceEvent } from "./presence-schema";

/** A room's presence as stored: its members (with their last stored state) and its sequence number. */
export interface StoredPresence {
  seq: number;
  members: Member[];
}

/** Membership changes of one call into the roster, written together. */
export interface PresenceWrite {
  upsert: Member[];
  remove: number[];
  seq: number;
  /** Events for the history, in sequence order. */
  history: PresenceEvent[];
}

export interface HistoryQuery {
  /** Events with a larger sequence number only. */
  afterSeq?: number;
  /** Events at or after this time (Unix ms). */
  fromMs?: number;
  /** Events before this time (Unix ms). */
  toMs?: number;
  limit: number;
}

/**
 * What the presence core needs from storage. Synchronous, like `RoomStorage`: a Durable
 * Object's SQLite is. Only membership changes are written (join, leave, status): a state
 * update is a cursor move, and a write per cursor move would put every one behind a commit.
 */
export interface PresenceStore {
  load(room: string): StoredPresence;
  /** Writes membership changes; the history is kept within the store's retention bounds. */
  write(room: string, change: PresenceWrite): void;
  history(room: string, query: HistoryQuery): PresenceEvent[];
  /** Rooms with a member in its disconnect grace: the alarm must load them when it ends. */
  roomsInGrace(): string[];
}

/** How much history a store keeps per room: events younger than `retentionMs`, at most `maxEvents`. */
export interface HistoryRetention {
  retentionMs: number;
  maxEvents: number;
}

/** An in-memory `PresenceStore`, for unit tests and the simulator. */
export class MemoryPresenceStore implements PresenceStore {
  constructor(
    private readonly retention: HistoryRetention = {
      retentionMs: Number.POSITIVE_INFINITY,
      maxEvents: Number.POSITIVE_INFINITY,
    },
  ) {}

  private readonly rooms = new Map<
    string,
    { seq: number; members: Map<number, Member>; history: PresenceEvent[] }
  >();
  writes = 0;

  load(room: string): StoredPresence {
    const stored = this.rooms.get(room);
    return {
      seq: stored?.seq ?? 0,
      members: stored ? [...stored.members.values()].map((m) => structuredClone(m)) : [],
    };
  }

  write(room: string, change: PresenceWrite): void {
    this.writes++;
    const stored = this.roomOf(room);
    for (const member of change.upsert)
      stored.members.set(member.clientId, structuredClone(member));
    for (const clientId of change.remove) stored.members.delete(clientId);
    stored.seq = Math.max(stored.seq, change.seq);
    stored.history.push(...change.history.map((e) => structuredClone(e)));
    const newest = change.history.at(-1);
    if (newest) {
      const cutoff = newest.at - this.retention.retentionMs;
      stored.history = stored.history.filter((e) => e.at >= cutoff);
      if (stored.history.length > this.retention.maxEvents)
        stored.history = stored.history.slice(-this.retention.maxEvents);
    }
  }

  roomsInGrace(): string[] {
    return [...this.rooms]
      .filter(([, stored]) => [...stored.members.values()].some((m) => m.status === "reconnecting"))
      .map(([room]) => room);
  }

  history(room: string, query: HistoryQuery): PresenceEvent[] {
    return (this.rooms.get(room)?.history ?? [])
      .filter(
        (e) =>
          (query.afterSeq === undefined || e.seq > query.afterSeq) &&
          (query.fromMs === undefined || e.at >= query.fromMs) &&
          (query.toMs === undefined || e.at < query.toMs),
      )
      .slice(0, query.limit);
  }

  private roomOf(room: string) {
    let stored = this.rooms.get(room);
    if (!stored) {
      stored = { seq: 0, members: new Map(), history: [] };
      this.rooms.set(room, stored);
    }
    return stored;
  }
}
