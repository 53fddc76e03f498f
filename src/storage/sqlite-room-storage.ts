import { joinChunks, splitIntoChunks } from "./chunking";
import type { RoomStorage, StoredRoom } from "./room-storage";

/** The parts of a Durable Object's storage this adapter uses. */
export interface SqliteHost {
  sql: SqlStorage;
  transactionSync<T>(fn: () => T): T;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS room_snapshot (
    room TEXT NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (room, part)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS room_log (
    room TEXT NOT NULL, seq INTEGER NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (room, seq, part)
  ) WITHOUT ROWID;
`;

/**
 * `RoomStorage` on a Durable Object's SQLite: an append-only update log and a compacted
 * snapshot per room, each blob split into rows of at most `maxRowBytes`.
 */
export class SqliteRoomStorage implements RoomStorage {
  /** Next log sequence number per room, learned on load. */
  private readonly nextSeq = new Map<string, number>();

  constructor(
    private readonly host: SqliteHost,
    private readonly maxRowBytes: number,
  ) {
    host.sql.exec(SCHEMA);
  }

  load(room: string): StoredRoom {
    const sql = this.host.sql;
    const snapshotRows = sql
      .exec<{ data: ArrayBuffer }>(
        "SELECT data FROM room_snapshot WHERE room = ? ORDER BY part",
        room,
      )
      .toArray();
    const snapshot =
      snapshotRows.length > 0
        ? joinChunks(snapshotRows.map((row) => new Uint8Array(row.data)))
        : null;

    const log: Uint8Array[] = [];
    let pending: Uint8Array[] = [];
    let pendingSeq = -1;
    let lastSeq = 0;
    for (const row of sql.exec<{ seq: number; data: ArrayBuffer }>(
      "SELECT seq, data FROM room_log WHERE room = ? ORDER BY seq, part",
      room,
    )) {
      if (row.seq !== pendingSeq && pending.length > 0) {
        log.push(joinChunks(pending));
        pending = [];
      }
      pendingSeq = row.seq;
      lastSeq = row.seq;
      pending.push(new Uint8Array(row.data));
    }
    if (pending.length > 0) log.push(joinChunks(pending));
    this.nextSeq.set(room, lastSeq + 1);
    return { snapshot, log };
  }

  append(room: string, update: Uint8Array): void {
    const seq = this.nextSeq.get(room) ?? this.readNextSeq(room);
    this.nextSeq.set(room, seq + 1);
    const chunks = splitIntoChunks(update, this.maxRowBytes);
    const write = () => {
      chunks.forEach((chunk, part) => {
        this.host.sql.exec(
          "INSERT INTO room_log (room, seq, part, data) VALUES (?, ?, ?, ?)",
          room,
          seq,
          part,
          toBuffer(chunk),
        );
      });
    };
    // One statement is atomic on its own; several parts must land together.
    if (chunks.length === 1) write();
    else this.host.transactionSync(write);
  }

  replaceWithSnapshot(room: string, snapshot: Uint8Array): void {
    const chunks = splitIntoChunks(snapshot, this.maxRowBytes);
    this.host.transactionSync(() => {
      const sql = this.host.sql;
      sql.exec("DELETE FROM room_snapshot WHERE room = ?", room);
      chunks.forEach((chunk, part) => {
        sql.exec(
          "INSERT INTO room_snapshot (room, part, data) VALUES (?, ?, ?)",
          room,
          part,
          toBuffer(chunk),
        );
      });
      sql.exec("DELETE FROM room_log WHERE room = ?", room);
    });
  }

  /** Every room with a stored document here (a shard lists them when it may hold rooms it no longer owns). */
  rooms(): string[] {
    return this.host.sql
      .exec<{ room: string }>(
        "SELECT room FROM room_snapshot WHERE part = 0 UNION SELECT DISTINCT room FROM room_log",
      )
      .toArray()
      .map((row) => row.room);
  }

  /** Deletes a room's document (it moved to another shard, which confirmed it holds it all). */
  drop(room: string): void {
    this.host.transactionSync(() => {
      this.host.sql.exec("DELETE FROM room_snapshot WHERE room = ?", room);
      this.host.sql.exec("DELETE FROM room_log WHERE room = ?", room);
    });
    this.nextSeq.delete(room);
  }

  private readNextSeq(room: string): number {
    const row = this.host.sql
      .exec<{ seq: number | null }>("SELECT MAX(seq) AS seq FROM room_log WHERE room = ?", room)
      .one();
    return (row.seq ?? 0) + 1;
  }
}

/** SQLite bindings take an ArrayBuffer; copy only when the view does not span its whole buffer. */
function toBuffer(view: Uint8Array): ArrayBuffer {
  if (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength)
    return view.buffer as ArrayBuffer;
  return view.slice().buffer as ArrayBuffer;
}
