import { describe, expect, it } from "vitest";
import { type CachedRoom, RoomCache, type RoomCacheLimits } from "../../src/core/room-cache";

interface FakeRoom extends CachedRoom {
  name: string;
  connectionCount: number;
  approximateBytes: number;
}

function room(name: string, approximateBytes = 10, connectionCount = 0): FakeRoom {
  return { name, approximateBytes, connectionCount };
}

function cacheWith(limits: Partial<RoomCacheLimits>, rooms: FakeRoom[]): RoomCache<FakeRoom> {
  const cache = new RoomCache<FakeRoom>({
    maxRoomsInMemory: 1000,
    roomMemoryBudgetBytes: 1 << 30,
    ...limits,
  });
  for (const r of rooms) cache.set(r.name, r);
  return cache;
}

const names = (rooms: FakeRoom[]): string[] => rooms.map((r) => r.name);

describe("RoomCache", () => {
  it("get returns the stored room, undefined for an unknown name, and size counts rooms", () => {
    const a = room("a");
    const cache = cacheWith({}, [a, room("b")]);
    expect(cache.get("a")).toBe(a);
    expect(cache.peek("a")).toBe(a);
    expect(cache.get("zzz")).toBeUndefined();
    expect(cache.peek("zzz")).toBeUndefined();
    expect(cache.size).toBe(2);
  });

  it("evicts least recently set first when over the room count", () => {
    const cache = cacheWith({ maxRoomsInMemory: 2 }, [room("a"), room("b"), room("c"), room("d")]);
    expect(names(cache.evict())).toEqual(["a", "b"]);
    expect(cache.size).toBe(2);
    expect(cache.peek("a")).toBeUndefined();
    expect(cache.peek("c")).toBeDefined();
    expect(cache.peek("d")).toBeDefined();
  });

  it("get marks a room most recently used", () => {
    const cache = cacheWith({ maxRoomsInMemory: 2 }, [room("a"), room("b"), room("c")]);
    cache.get("a");
    expect(names(cache.evict())).toEqual(["b"]);
    expect(cache.peek("a")).toBeDefined();
  });

  it("peek does not change recency", () => {
    const cache = cacheWith({ maxRoomsInMemory: 2 }, [room("a"), room("b"), room("c")]);
    cache.peek("a");
    expect(names(cache.evict())).toEqual(["a"]);
  });

  it("set on an existing name replaces the room and marks it most recently used", () => {
    const cache = cacheWith({ maxRoomsInMemory: 2 }, [room("a"), room("b")]);
    const newA = room("a", 1);
    cache.set("a", newA);
    expect(cache.size).toBe(2);
    cache.set("c", room("c"));
    expect(names(cache.evict())).toEqual(["b"]);
    expect(cache.peek("a")).toBe(newA);
  });

  it("evicts nothing within both limits", () => {
    const cache = cacheWith({ maxRoomsInMemory: 3, roomMemoryBudgetBytes: 30 }, [
      room("a", 10),
      room("b", 10),
      room("c", 10),
    ]);
    expect(cache.evict()).toEqual([]);
    expect(cache.size).toBe(3);
  });

  it("evicts by bytes until within the budget, oldest first", () => {
    const cache = cacheWith({ roomMemoryBudgetBytes: 100 }, [
      room("a", 60),
      room("b", 30),
      room("c", 50),
    ]);
    expect(names(cache.evict())).toEqual(["a"]);
    expect(cache.size).toBe(2);
    cache.set("d", room("d", 45)); // 30 + 50 + 45 = 125
    expect(names(cache.evict())).toEqual(["b"]); // 95 left
    expect(cache.evict()).toEqual([]);
  });

  it("a budget exactly met is within the budget", () => {
    const cache = cacheWith({ roomMemoryBudgetBytes: 100 }, [room("a", 40), room("b", 60)]);
    expect(cache.evict()).toEqual([]);
  });

  it("never evicts a room with connections, whatever the count", () => {
    const cache = cacheWith({ maxRoomsInMemory: 1 }, [room("busy", 10, 2), room("b"), room("c")]);
    expect(names(cache.evict())).toEqual(["b", "c"]);
    expect(cache.peek("busy")).toBeDefined();
    cache.set("d", room("d", 10, 1));
    expect(cache.evict()).toEqual([]); // two busy rooms: over the count, but nothing may go
    expect(cache.size).toBe(2);
  });

  it("never evicts a room with connections, whatever the bytes, but does evict idle ones for it", () => {
    const cache = cacheWith({ roomMemoryBudgetBytes: 100 }, [
      room("idle-old", 10),
      room("huge", 500, 1),
      room("idle-new", 10),
    ]);
    expect(names(cache.evict())).toEqual(["idle-old", "idle-new"]);
    expect(names([cache.peek("huge") as FakeRoom])).toEqual(["huge"]);
    expect(cache.size).toBe(1);
  });

  it("a room whose last connection left becomes evictable", () => {
    const busy = room("a", 10, 1);
    const cache = cacheWith({ maxRoomsInMemory: 1 }, [busy, room("b", 10, 1)]);
    expect(cache.evict()).toEqual([]);
    busy.connectionCount = 0;
    expect(cache.evict()).toEqual([busy]);
  });
});
