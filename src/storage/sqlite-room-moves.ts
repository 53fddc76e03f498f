import type { SqliteHost } from "./sqlite-room-storage";

/**
 * A shard's record of rooms moving between the shards of its region (DESIGN.md, "Routing"):
 * the rooms it handed to a new owner and still holds a copy of (`out`, until the owner
 * confirms), and the epoch at which each room it owns last pulled from its former owners
 * (`arrived`), and the newest epoch it finished handing rooms away for. All survive restarts: a copy is never dropped unconfirmed, and a room is
 * pulled once per epoch, not on every load.
 */
export class SqliteRoomMoves {
  #out: Map<string, number> | undefined;
  #rebalanced: number | undefined;

  constructor(private readonly host: SqliteHost) {
    host.sql.exec(`
      CREATE TABLE IF NOT EXISTS room_moved_out (room TEXT PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS room_arrived (room TEXT PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS shard_rebalanced (id INTEGER PRIMARY KEY CHECK (id = 0), epoch INTEGER NOT NULL);
    `);
  }

  /** The epoch at which `room` was handed away from here, or undefined when it was not. */
  movedOutAt(room: string): number | undefined {
    return this.#outs().get(room);
  }

  /** Rooms handed away whose copy is still here. */
  movedOut(): string[] {
    return [...this.#outs().keys()];
  }

  markOut(room: string, epoch: number): void {
    if (this.#outs().get(room) === epoch) return;
    this.host.sql.exec(
      "INSERT OR REPLACE INTO room_moved_out (room, epoch) VALUES (?, ?)",
      room,
      epoch,
    );
    this.#outs().set(room, epoch);
  }

  /** The copy was dropped, or the room came back to this shard. */
  clearOut(room: string): void {
    if (!this.#outs().has(room)) return;
    this.host.sql.exec("DELETE FROM room_moved_out WHERE room = ?", room);
    this.#outs().delete(room);
  }

  arrivedAt(room: string): number {
    const row = this.host.sql
      .exec<{ epoch: number }>("SELECT epoch FROM room_arrived WHERE room = ?", room)
      .toArray()[0];
    return row?.epoch ?? 0;
  }

  markArrived(room: string, epoch: number): void {
    this.host.sql.exec(
      "INSERT OR REPLACE INTO room_arrived (room, epoch) VALUES (?, ?)",
      room,
      epoch,
    );
  }

  rebalancedAt(): number {
    this.#rebalanced ??=
      this.host.sql
        .exec<{ epoch: number }>("SELECT epoch FROM shard_rebalanced WHERE id = 0")
        .toArray()[0]?.epoch ?? 0;
    return this.#rebalanced;
  }

  markRebalanced(epoch: number): void {
    if (this.rebalancedAt() >= epoch) return;
    this.host.sql.exec("INSERT OR REPLACE INTO shard_rebalanced (id, epoch) VALUES (0, ?)", epoch);
    this.#rebalanced = epoch;
  }

  #outs(): Map<string, number> {
    this.#out ??= new Map(
      this.host.sql
        .exec<{ room: string; epoch: number }>("SELECT room, epoch FROM room_moved_out")
        .toArray()
        .map((row) => [row.room, row.epoch]),
    );
    return this.#out;
  }
}
