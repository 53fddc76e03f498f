import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { STORAGE_ORIGIN } from "../../src/core/change-origin";
import { joinChunks, splitIntoChunks } from "../../src/storage/chunking";
import { MemoryRoomStorage } from "../../src/storage/memory-room-storage";
import {
  type CompactionThresholds,
  type PersistenceStats,
  RoomPersistence,
  shouldCompact,
} from "../../src/storage/room-persistence";

function sequence(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff);
}

describe("splitIntoChunks / joinChunks", () => {
  it("splits an exact multiple into full chunks", () => {
    const data = sequence(3000);
    const chunks = splitIntoChunks(data, 1000);
    expect(chunks.map((c) => c.byteLength)).toEqual([1000, 1000, 1000]);
    expect(Array.from(chunks[1] as Uint8Array)).toEqual(Array.from(data.subarray(1000, 2000)));
  });

  it("one byte over the limit makes a second chunk of one byte", () => {
    const data = sequence(1001);
    const chunks = splitIntoChunks(data, 1000);
    expect(chunks.map((c) => c.byteLength)).toEqual([1000, 1]);
    expect(chunks[1]?.[0]).toBe(data[1000]);
  });

  it("a blob of exactly maxBytes, or smaller, is one chunk (the same object)", () => {
    const data = sequence(1000);
    expect(splitIntoChunks(data, 1000)).toEqual([data]);
    expect(splitIntoChunks(data, 1000)[0]).toBe(data);
    expect(splitIntoChunks(data, 5000)[0]).toBe(data);
  });

  it("an empty blob is one empty chunk, and joins back to empty", () => {
    const chunks = splitIntoChunks(new Uint8Array(0), 10);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.byteLength).toBe(0);
    expect(joinChunks(chunks).byteLength).toBe(0);
    expect(joinChunks([]).byteLength).toBe(0);
  });

  it("chunks are views of the input, not copies", () => {
    const data = sequence(25);
    for (const chunk of splitIntoChunks(data, 10)) expect(chunk.buffer).toBe(data.buffer);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    "rejects maxBytes = %s with a RangeError",
    (maxBytes) => {
      expect(() => splitIntoChunks(sequence(10), maxBytes)).toThrow(RangeError);
      expect(() => splitIntoChunks(sequence(10), maxBytes)).toThrow(
        /maxBytes must be a positive integer/,
      );
    },
  );

  it("joinChunks(splitIntoChunks(x)) is x for every size around the chunk boundary", () => {
    for (const size of [1, 2, 9, 10, 11, 19, 20, 21, 99, 100, 101]) {
      const data = sequence(size);
      const chunks = splitIntoChunks(data, 10);
      expect(chunks.every((c) => c.byteLength <= 10 && c.byteLength > 0)).toBe(true);
      expect(chunks).toHaveLength(Math.ceil(size / 10));
      expect(joinChunks(chunks)).toEqual(data);
    }
  });

  it("joinChunks of one chunk returns it without copying; of several, a fresh array", () => {
    const one = sequence(5);
    expect(joinChunks([one])).toBe(one);
    const a = sequence(3);
    const b = sequence(4);
    const joined = joinChunks([a, b]);
    expect(Array.from(joined)).toEqual([...a, ...b]);
    joined[0] = 99;
    expect(a[0]).not.toBe(99);
  });

  it("splits at 1 byte per chunk", () => {
    expect(splitIntoChunks(Uint8Array.of(1, 2, 3), 1).map((c) => Array.from(c))).toEqual([
      [1],
      [2],
      [3],
    ]);
  });
});

describe("shouldCompact", () => {
  const thresholds: CompactionThresholds = { compactAfterUpdates: 10, compactAfterBytes: 1000 };
  const stats = (logUpdates: number, logBytes: number): PersistenceStats => ({
    snapshotBytes: 123_456,
    logUpdates,
    logBytes,
    compactions: 0,
  });

  it("is false below both thresholds (the snapshot size does not matter)", () => {
    expect(shouldCompact(stats(0, 0), thresholds)).toBe(false);
    expect(shouldCompact(stats(9, 999), thresholds)).toBe(false);
  });

  it("is true once the log holds compactAfterUpdates updates", () => {
    expect(shouldCompact(stats(10, 0), thresholds)).toBe(true);
    expect(shouldCompact(stats(11, 5), thresholds)).toBe(true);
  });

  it("is true once the log holds compactAfterBytes bytes", () => {
    expect(shouldCompact(stats(1, 1000), thresholds)).toBe(true);
    expect(shouldCompact(stats(1, 5000), thresholds)).toBe(true);
  });
});

/** Collects a document's updates, one per transaction. */
function recordUpdates(doc: Y.Doc): Uint8Array[] {
  const updates: Uint8Array[] = [];
  doc.on("update", (update: Uint8Array) => updates.push(update));
  return updates;
}

describe("RoomPersistence", () => {
  const roomy: CompactionThresholds = { compactAfterUpdates: 1000, compactAfterBytes: 1 << 20 };

  it("loads nothing from empty storage and writes nothing", () => {
    const storage = new MemoryRoomStorage();
    const persistence = new RoomPersistence("r", storage, roomy);
    const doc = new Y.Doc();
    persistence.loadInto(doc);
    expect(Y.encodeStateVector(doc)).toEqual(Y.encodeStateVector(new Y.Doc()));
    expect(persistence.snapshotStats()).toEqual({
      snapshotBytes: 0,
      logUpdates: 0,
      logBytes: 0,
      compactions: 0,
    });
    expect(persistence.storedBytes).toBe(0);
    expect(storage.writes).toBe(0);
  });

  it("append writes each update to the log and counts it", () => {
    const storage = new MemoryRoomStorage();
    const persistence = new RoomPersistence("r", storage, roomy);
    const doc = new Y.Doc();
    const updates = recordUpdates(doc);
    doc.getText("t").insert(0, "ab");
    doc.getText("t").insert(2, "cd");
    for (const update of updates) persistence.append(update, doc);
    const bytes = updates.reduce((sum, u) => sum + u.byteLength, 0);
    expect(storage.load("r").log).toEqual(updates);
    expect(persistence.snapshotStats()).toEqual({
      snapshotBytes: 0,
      logUpdates: 2,
      logBytes: bytes,
      compactions: 0,
    });
    expect(persistence.storedBytes).toBe(bytes);
  });

  it("compact replaces the log with a snapshot of the document", () => {
    const storage = new MemoryRoomStorage();
    const persistence = new RoomPersistence("r", storage, roomy);
    const doc = new Y.Doc();
    const updates = recordUpdates(doc);
    doc.getText("t").insert(0, "compacted");
    for (const update of updates) persistence.append(update, doc);
    persistence.compact(doc);
    const stored = storage.load("r");
    expect(stored.log).toEqual([]);
    expect(stored.snapshot).toEqual(Y.encodeStateAsUpdate(doc));
    expect(persistence.snapshotStats()).toEqual({
      snapshotBytes: stored.snapshot?.byteLength,
      logUpdates: 0,
      logBytes: 0,
      compactions: 1,
    });
    expect(persistence.storedBytes).toBe(stored.snapshot?.byteLength);
  });

  it("append compacts when the count threshold is reached", () => {
    const storage = new MemoryRoomStorage();
    const persistence = new RoomPersistence("r", storage, {
      compactAfterUpdates: 3,
      compactAfterBytes: 1 << 20,
    });
    const doc = new Y.Doc();
    const updates = recordUpdates(doc);
    for (let i = 0; i < 7; i++) {
      doc.getText("t").insert(i, String(i));
      persistence.append(updates[i] as Uint8Array, doc);
    }
    const stats = persistence.snapshotStats();
    expect(stats.compactions).toBe(2);
    expect(stats.logUpdates).toBe(1);
    expect(storage.load("r").log).toHaveLength(1);
  });

  it("loadInto applies snapshot then log with the storage origin, and counts what it found", () => {
    const storage = new MemoryRoomStorage();
    const source = new Y.Doc();
    const updates = recordUpdates(source);
    source.getText("t").insert(0, "snap");
    storage.replaceWithSnapshot("r", Y.encodeStateAsUpdate(source));
    source.getText("t").insert(4, "+log1");
    source.getText("t").insert(9, "+log2");
    storage.append("r", updates[1] as Uint8Array);
    storage.append("r", updates[2] as Uint8Array);
    const writes = storage.writes;

    const doc = new Y.Doc();
    const origins: unknown[] = [];
    doc.on("update", (_u: Uint8Array, origin: unknown) => origins.push(origin));
    const persistence = new RoomPersistence("r", storage, roomy);
    persistence.loadInto(doc);
    expect(doc.getText("t").toString()).toBe("snap+log1+log2");
    expect(origins).toEqual([STORAGE_ORIGIN]);
    const stats = persistence.snapshotStats();
    expect(stats.logUpdates).toBe(2);
    expect(stats.logBytes).toBe((updates[1]?.byteLength ?? 0) + (updates[2]?.byteLength ?? 0));
    expect(stats.snapshotBytes).toBe(storage.load("r").snapshot?.byteLength);
    expect(stats.compactions).toBe(0);
    expect(storage.writes).toBe(writes);
  });

  it("loadInto compacts at once when the stored log is already over a threshold", () => {
    const storage = new MemoryRoomStorage();
    const source = new Y.Doc();
    const updates = recordUpdates(source);
    for (let i = 0; i < 5; i++) source.getText("t").insert(i, "x");
    for (const update of updates) storage.append("r", update);

    const doc = new Y.Doc();
    const persistence = new RoomPersistence("r", storage, {
      compactAfterUpdates: 4,
      compactAfterBytes: 1 << 20,
    });
    persistence.loadInto(doc);
    expect(doc.getText("t").toString()).toBe("xxxxx");
    expect(persistence.snapshotStats()).toMatchObject({ logUpdates: 0, compactions: 1 });
    const stored = storage.load("r");
    expect(stored.log).toEqual([]);
    const reloaded = new Y.Doc();
    Y.applyUpdate(reloaded, stored.snapshot as Uint8Array);
    expect(reloaded.getText("t").toString()).toBe("xxxxx");
  });

  it("keeps rooms apart in the same storage", () => {
    const storage = new MemoryRoomStorage();
    const a = new Y.Doc();
    const updates = recordUpdates(a);
    a.getText("t").insert(0, "only in a");
    new RoomPersistence("a", storage, roomy).append(updates[0] as Uint8Array, a);
    const b = new Y.Doc();
    new RoomPersistence("b", storage, roomy).loadInto(b);
    expect(b.getText("t").toString()).toBe("");
    const a2 = new Y.Doc();
    new RoomPersistence("a", storage, roomy).loadInto(a2);
    expect(a2.getText("t").toString()).toBe("only in a");
  });

  it("snapshotStats returns a copy", () => {
    const persistence = new RoomPersistence("r", new MemoryRoomStorage(), roomy);
    const stats = persistence.snapshotStats();
    stats.logUpdates = 99;
    expect(persistence.snapshotStats().logUpdates).toBe(0);
  });
});

describe("MemoryRoomStorage", () => {
  it("copies what it stores and what it hands out", () => {
    const storage = new MemoryRoomStorage();
    const update = Uint8Array.of(1, 2, 3);
    storage.append("r", update);
    update[0] = 42;
    const loaded = storage.load("r");
    expect(Array.from(loaded.log[0] as Uint8Array)).toEqual([1, 2, 3]);
    loaded.log.push(Uint8Array.of(9));
    expect(storage.load("r").log).toHaveLength(1);
  });

  it("replaceWithSnapshot empties the log and counts writes", () => {
    const storage = new MemoryRoomStorage();
    storage.append("r", Uint8Array.of(1));
    storage.append("r", Uint8Array.of(2));
    storage.replaceWithSnapshot("r", Uint8Array.of(7, 7));
    expect(storage.load("r")).toEqual({ snapshot: Uint8Array.of(7, 7), log: [] });
    expect(storage.writes).toBe(3);
    expect(storage.load("other")).toEqual({ snapshot: null, log: [] });
  });
});
