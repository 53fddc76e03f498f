import type { SqliteHost } from "./sqlite-room-storage";

/**
 * The rooms whose replica takes part in replication (its link is active), kept in the shard's
 * SQLite. Memory is lost on a restart; a change stored just before it may not have reached any
 * peer (its batch lost, no anti-entropy since), so the alarm after a restart loads these rooms
 * and resumes their links, even if no client comes back. Written only when the set changes.
 */
export class SqliteReplicatingRooms {
  #cached: Set<string> | undefined;

  constructor(private readonly host: SqliteHost) {
    host.sql.exec(
      "CREATE TABLE IF NOT EXISTS replicating_rooms (room TEXT PRIMARY KEY) WITHOUT ROWID",
    );
  }

  list(): string[] {
    return [...this.all()];
  }

  /** Records whether `room` replicates; a no-op when nothing changes. */
  set(room: string, replicating: boolean): void {
    const all = this.all();
    if (all.has(room) === replicating) return;
    if (replicating) {
      this.host.sql.exec("INSERT OR IGNORE INTO replicating_rooms (room) VALUES (?)", room);
      all.add(room);
    } else {
      this.host.sql.exec("DELETE FROM replicating_rooms WHERE room = ?", room);
      all.delete(room);
    }
  }

  private all(): Set<string> {
    this.#cached ??= new Set(
      this.host.sql
        .exec<{ room: string }>("SELECT room FROM replicating_rooms")
        .toArray()
        .map((row) => row.room),
    );
    return this.#cached;
  }
}
