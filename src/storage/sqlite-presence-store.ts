import { type Member, memberSchema, type PresenceEvent } from "../presence/presence-schema";
import type {
  HistoryQuery,
  HistoryRetention,
  PresenceStore,
  PresenceWrite,
  StoredPresence,
  WebhookDelivery,
  WebhookOutbox,
} from "../presence/presence-store";
import type { SqliteHost } from "./sqlite-room-storage";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS presence_room (
    room TEXT PRIMARY KEY, seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS presence_member (
    room TEXT NOT NULL, client_id INTEGER NOT NULL, reconnecting INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (room, client_id)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, event TEXT NOT NULL,
    attempts INTEGER NOT NULL, due_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (due_at);
  CREATE TABLE IF NOT EXISTS presence_history (
    room TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (room, seq)
  ) WITHOUT ROWID;
`;

/** Prune a room's history once every this many writes: bounded work per write, bounded rows. */
const PRUNE_EVERY_WRITES = 32;

/** `PresenceStore` on a Durable Object's SQLite: members, the room's sequence number, its history, and the webhook queue. */
export class SqlitePresenceStore implements PresenceStore, WebhookOutbox {
  private readonly writesSincePrune = new Map<string, number>();

  constructor(
    private readonly host: SqliteHost,
    private readonly retention: HistoryRetention,
  ) {
    host.sql.exec(SCHEMA);
  }

  load(room: string): StoredPresence {
    const sql = this.host.sql;
    const seqRow = sql
      .exec<{ seq: number }>("SELECT seq FROM presence_room WHERE room = ?", room)
      .toArray()[0];
    const members: Member[] = [];
    for (const row of sql.exec<{ record: string }>(
      "SELECT record FROM presence_member WHERE room = ?",
      room,
    )) {
      // A row this code wrote; one that no longer parses (an older format) is skipped, not fatal.
      const parsed = memberSchema.safeParse(JSON.parse(row.record));
      if (parsed.success) members.push(parsed.data);
    }
    return { seq: seqRow?.seq ?? 0, members };
  }

  write(room: string, change: PresenceWrite): void {
    this.host.transactionSync(() => {
      const sql = this.host.sql;
      for (const member of change.upsert) {
        sql.exec(
          "INSERT OR REPLACE INTO presence_member (room, client_id, reconnecting, record) VALUES (?, ?, ?, ?)",
          room,
          member.clientId,
          member.status === "reconnecting" ? 1 : 0,
          JSON.stringify(member),
        );
      }
      for (const clientId of change.remove) {
        sql.exec("DELETE FROM presence_member WHERE room = ? AND client_id = ?", room, clientId);
      }
      sql.exec(
        "INSERT INTO presence_room (room, seq) VALUES (?, ?) ON CONFLICT (room) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        room,
        change.seq,
      );
      for (const event of change.history) {
        sql.exec(
          "INSERT OR REPLACE INTO presence_history (room, seq, at, event) VALUES (?, ?, ?, ?)",
          room,
          event.seq,
          event.at,
          JSON.stringify(event),
        );
      }
      for (const event of change.outbox) {
        sql.exec(
          "INSERT INTO webhook_outbox (room, event, attempts, due_at) VALUES (?, ?, 0, ?)",
          room,
          JSON.stringify(event),
          event.at,
        );
      }
      const newest = change.history.at(-1);
      const writes = (this.writesSincePrune.get(room) ?? 0) + 1;
      if (newest && writes >= PRUNE_EVERY_WRITES) {
        this.prune(room, newest.at);
        this.writesSincePrune.set(room, 0);
      } else {
        this.writesSincePrune.set(room, writes);
      }
    });
  }

  history(room: string, query: HistoryQuery): PresenceEvent[] {
    const rows = this.host.sql.exec<{ event: string }>(
      `SELECT event FROM presence_history
       WHERE room = ? AND seq > ? AND at >= ? AND at < ?
       ORDER BY seq LIMIT ?`,
      room,
      query.afterSeq ?? -1,
      query.fromMs ?? 0,
      query.toMs ?? Number.MAX_SAFE_INTEGER,
      query.limit,
    );
    return rows.toArray().map((row) => JSON.parse(row.event) as PresenceEvent);
  }

  due(nowMs: number, limit: number): WebhookDelivery[] {
    return this.host.sql
      .exec<{ id: number; room: string; event: string; attempts: number }>(
        "SELECT id, room, event, attempts FROM webhook_outbox WHERE due_at <= ? ORDER BY due_at, id LIMIT ?",
        nowMs,
        limit,
      )
      .toArray()
      .map((row) => ({ ...row, event: JSON.parse(row.event) as PresenceEvent }));
  }

  delivered(id: number): void {
    this.host.sql.exec("DELETE FROM webhook_outbox WHERE id = ?", id);
  }

  retryAt(id: number, attempts: number, dueAtMs: number): void {
    this.host.sql.exec(
      "UPDATE webhook_outbox SET attempts = ?, due_at = ? WHERE id = ?",
      attempts,
      dueAtMs,
      id,
    );
  }

  giveUp(id: number): void {
    this.host.sql.exec("DELETE FROM webhook_outbox WHERE id = ?", id);
  }

  nextDue(): number | null {
    const row = this.host.sql
      .exec<{ due: number | null }>("SELECT MIN(due_at) AS due FROM webhook_outbox")
      .toArray()[0];
    return row?.due ?? null;
  }

  /** Rooms with stored members (see `SqliteRoomStorage.rooms`). */
  rooms(): string[] {
    return this.host.sql
      .exec<{ room: string }>("SELECT DISTINCT room FROM presence_member")
      .toArray()
      .map((row) => row.room);
  }

  /**
   * Everything a room's presence keeps here, as one write another shard's store takes whole:
   * its members (with their graces), its sequence number and its history. Webhook deliveries
   * stay: they are sent from here whatever room they name.
   */
  exportRoom(room: string): PresenceWrite {
    const { seq, members } = this.load(room);
    const history = this.history(room, { limit: this.retention.maxEvents });
    return { upsert: members, remove: [], seq, history, outbox: [] };
  }

  /** Deletes a room's members, sequence number and history (it moved to another shard). */
  drop(room: string): void {
    this.host.transactionSync(() => {
      const sql = this.host.sql;
      sql.exec("DELETE FROM presence_member WHERE room = ?", room);
      sql.exec("DELETE FROM presence_room WHERE room = ?", room);
      sql.exec("DELETE FROM presence_history WHERE room = ?", room);
    });
    this.writesSincePrune.delete(room);
  }

  roomsInGrace(): string[] {
    return this.host.sql
      .exec<{ room: string }>("SELECT DISTINCT room FROM presence_member WHERE reconnecting = 1")
      .toArray()
      .map((row) => row.room);
  }

  private prune(room: string, nowMs: number): void {
    const sql = this.host.sql;
    sql.exec(
      "DELETE FROM presence_history WHERE room = ? AND at < ?",
      room,
      nowMs - this.retention.retentionMs,
    );
    const keepFrom = sql
      .exec<{ seq: number }>(
        "SELECT seq FROM presence_history WHERE room = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
        room,
        this.retention.maxEvents - 1,
      )
      .toArray()[0];
    if (keepFrom)
      sql.exec("DELETE FROM presence_history WHERE room = ? AND seq < ?", room, keepFrom.seq);
  }
}
