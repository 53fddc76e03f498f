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
  /** Events to post to the webhook, queued in the same write so none is lost or sent twice for one change. */
  outbox: PresenceEvent[];
}

/** One queued webhook delivery. */
export interface WebhookDelivery {
  id: number;
  room: string;
  event: PresenceEvent;
  /** Deliveries tried so far. */
  attempts: number;
}

/**
 * The webhook queue, kept with presence in the shard's storage. The alarm takes what is due,
 * posts it, and reports back; a delivery stays queued until it succeeded or was given up.
 */
export interface WebhookOutbox {
  due(nowMs: number, limit: number): WebhookDelivery[];
  delivered(id: number): void;
  retryAt(id: number, attempts: number, dueAtMs: number): void;
  giveUp(id: number): void;
  /** When the next queued delivery is due (Unix ms), or null when the queue is empty. */
  nextDue(): number | null;
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
export class MemoryPresenceStore implements PresenceStore, WebhookOutbox {
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
  private readonly queue = new Map<number, WebhookDelivery & { dueAt: number }>();
  private nextId = 1;
  /** Deliveries given up, for tests. */
  readonly givenUp: WebhookDelivery[] = [];

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
    for (const event of change.outbox) {
      const id = this.nextId++;
      this.queue.set(id, { id, room, event: structuredClone(event), attempts: 0, dueAt: event.at });
    }
    const newest = change.history.at(-1);
    if (newest) {
      const cutoff = newest.at - this.retention.retentionMs;
      stored.history = stored.history.filter((e) => e.at >= cutoff);
      if (stored.history.length > this.retention.maxEvents)
        stored.history = stored.history.slice(-this.retention.maxEvents);
    }
  }

  due(nowMs: number, limit: number): WebhookDelivery[] {
    return [...this.queue.values()]
      .filter((d) => d.dueAt <= nowMs)
      .slice(0, limit)
      .map(({ id, room, event, attempts }) => ({ id, room, event, attempts }));
  }

  delivered(id: number): void {
    this.queue.delete(id);
  }

  retryAt(id: number, attempts: number, dueAtMs: number): void {
    const delivery = this.queue.get(id);
    if (delivery) Object.assign(delivery, { attempts, dueAt: dueAtMs });
  }

  giveUp(id: number): void {
    const delivery = this.queue.get(id);
    this.queue.delete(id);
    if (delivery) this.givenUp.push(delivery);
  }

  nextDue(): number | null {
    let next: number | null = null;
    for (const d of this.queue.values()) if (next === null || d.dueAt < next) next = d.dueAt;
    return next;
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
