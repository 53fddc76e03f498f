export interface RoomCacheLimits {
  maxRoomsInMemory: number;
  roomMemoryBudgetBytes: number;
}

export interface CachedRoom {
  /** Rooms with live connections stay loaded whatever the budget. */
  readonly connectionCount: number;
  readonly approximateBytes: number;
}

/**
 * The rooms a shard keeps loaded, least recently used first. Idle rooms are unloaded when the
 * shard holds more rooms or bytes than configured; they reload from storage on demand.
 */
export class RoomCache<T extends CachedRoom> {
  // A Map iterates in insertion order; re-inserting on use keeps it in recency order.
  private readonly rooms = new Map<string, T>();

  constructor(private readonly limits: RoomCacheLimits) {}

  get size(): number {
    return this.rooms.size;
  }

  /** Returns a loaded room and marks it most recently used. */
  get(name: string): T | undefined {
    const room = this.rooms.get(name);
    if (room !== undefined) {
      this.rooms.delete(name);
      this.rooms.set(name, room);
    }
    return room;
  }

  /** The loaded rooms' names, least recently used first. */
  names(): string[] {
    return [...this.rooms.keys()];
  }

  /** Looks without changing recency. */
  peek(name: string): T | undefined {
    return this.rooms.get(name);
  }

  set(name: string, room: T): void {
    this.rooms.delete(name);
    this.rooms.set(name, room);
  }

  delete(name: string): void {
    this.rooms.delete(name);
  }

  /**
   * Unloads idle rooms, least recently used first, until within both limits; returns what it
   * unloaded. `inUse` keeps a room without connections that still has work (a replica taking part
   * in replication).
   */
  evict(inUse: (name: string) => boolean = () => false): T[] {
    let bytes = 0;
    for (const room of this.rooms.values()) bytes += room.approximateBytes;
    const evicted: T[] = [];
    for (const [name, room] of this.rooms) {
      if (
        this.rooms.size <= this.limits.maxRoomsInMemory &&
        bytes <= this.limits.roomMemoryBudgetBytes
      )
        break;
      if (room.connectionCount > 0 || inUse(name)) continue;
      this.rooms.delete(name);
      bytes -= room.approximateBytes;
      evicted.push(room);
    }
    return evicted;
  }
}
