/** A room's durable state as stored: the compacted snapshot, then the log of updates since. */
export interface StoredRoom {
  snapshot: Uint8Array | null;
  log: Uint8Array[];
}

/**
 * The narrow storage interface the room core sees. The shard adapts it from
 * `ctx.storage.sql` (sqlite-room-storage.ts); tests and the simulator use the in-memory one.
 * Every call is synchronous, as the Durable Object SQLite API is, so a write is durable
 * (behind the output gate) before any frame it caused leaves the shard.
 */
export interface RoomStorage {
  load(room: string): StoredRoom;
  /** Appends one Yjs update to the room's log. */
  append(room: string, update: Uint8Array): void;
  /** Atomically replaces the room's snapshot and empties its log. */
  replaceWithSnapshot(room: string, snapshot: Uint8Array): void;
}
