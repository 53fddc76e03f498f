import type { RoomStorage, StoredRoom } from "./room-storage";

/** `RoomStorage` in memory: for pure-core tests and the simulator, where a "restart" keeps this object. */
export class MemoryRoomStorage implements RoomStorage {
  private readonly rooms = new Map<string, StoredRoom>();
  /** Counts writes, so tests can see compaction happen. */
  writes = 0;

  load(room: string): StoredRoom {
    const stored = this.rooms.get(room);
    return stored
      ? { snapshot: stored.snapshot, log: [...stored.log] }
      : { snapshot: null, log: [] };
  }

  append(room: string, update: Uint8Array): void {
    this.writes++;
    const stored = this.rooms.get(room) ?? { snapshot: null, log: [] };
    stored.log.push(update.slice());
    this.rooms.set(room, stored);
  }

  replaceWithSnapshot(room: string, snapshot: Uint8Array): void {
    this.writes++;
    this.rooms.set(room, { snapshot: snapshot.slice(), log: [] });
  }
}
