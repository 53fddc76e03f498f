import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { parseConfig } from "../../src/config/config-schema";
import {
  type GossipMessage,
  type GossipSettings,
  MAX_HOT_SHARDS,
  MembershipNode,
  type PersistedMembership,
} from "../../src/membership/membership-node";
import { membershipViewSchema, regionEntrySchema } from "../../src/membership/membership-schema";
import { digestOf, type RegionEntry, SHARD_HISTORY } from "../../src/membership/region-entry";
import {
  carriesContent,
  documentBeyond,
  roomsToHandAway,
  shardsToPull,
  storedCoveredBy,
  storedDocument,
  storedStateVector,
} from "../../src/rebalance/room-handoff";
import {
  formerOwners,
  layoutFor,
  layoutsFromEntries,
  ownerIndex,
  type ShardLayout,
} from "../../src/routing/shard-layout";
import { allShards, shardFor, shardsOf } from "../../src/routing/shard-router";
import type { StoredRoom } from "../../src/storage/room-storage";
import { TEST_GOSSIP } from "./gossip-settings";

const T0 = 1_700_000_000_000;

const SETTINGS: GossipSettings = TEST_GOSSIP;

const ROOMS = Array.from({ length: 10_000 }, (_, i) => `room-${i}`);

const at = (count: number, epoch = 0, previous: number[] = []): ShardLayout => ({
  count,
  epoch,
  previous,
});

/** The first room that satisfies `test` (fails the test if none does). */
function roomWhere(test: (room: string) => boolean): string {
  const room = ROOMS.find(test);
  if (room === undefined) throw new Error("no room fits");
  return room;
}

// ---------------------------------------------------------------------------------------------
// Routing: jump hash under a resize.

describe("a resize moves only the rooms whose owner changes, and about |M-N|/max(M,N) of them", () => {
  for (const [from, to] of [
    [4, 5],
    [5, 3],
    [4, 8],
    [8, 4],
  ] as const) {
    it(`${from} -> ${to}`, () => {
      const before = at(from);
      const after = at(to, 1, [from]);
      const moved = new Map<string, { from: number; to: number }>();
      for (const room of ROOMS) {
        const a = ownerIndex(room, before);
        const b = ownerIndex(room, after);
        expect(b).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThan(to);
        if (a !== b) moved.set(room, { from: a, to: b });
      }

      // What the old shards hand away is exactly the moved set, each to its new owner.
      const handed = new Map<string, number>();
      for (let self = 0; self < from; self++) {
        const stored = ROOMS.filter((room) => ownerIndex(room, before) === self);
        for (const { room, owner } of roomsToHandAway(stored, after, self)) {
          expect(handed.has(room)).toBe(false);
          handed.set(room, owner);
        }
      }
      expect(handed.size).toBe(moved.size);
      for (const [room, move] of moved) expect(handed.get(room)).toBe(move.to);

      const share = moved.size / ROOMS.length;
      expect(Math.abs(share - Math.abs(to - from) / Math.max(to, from))).toBeLessThan(0.03);

      if (to > from) {
        // Growth: only onto the new indexes, spread evenly over them.
        for (const move of moved.values()) expect(move.to).toBeGreaterThanOrEqual(from);
        for (let index = from; index < to; index++) {
          const landed = [...moved.values()].filter((move) => move.to === index).length;
          expect(Math.abs(landed / ROOMS.length - 1 / to)).toBeLessThan(0.02);
        }
      } else {
        // Shrink: only off the removed indexes, and every room on them moves.
        for (const move of moved.values()) expect(move.from).toBeGreaterThanOrEqual(to);
        const onRemoved = ROOMS.filter((room) => ownerIndex(room, before) >= to).length;
        expect(moved.size).toBe(onRemoved);
      }

      // Each new owner pulls a moved room from exactly its old shard; nobody pulls the others.
      for (const [room, move] of moved) {
        expect(shardsToPull(room, after, move.to, 0)).toEqual([move.from]);
        expect(shardsToPull(room, after, move.from, 0)).toEqual([]);
      }
      const stayed = roomWhere((room) => !moved.has(room));
      expect(shardsToPull(stayed, after, ownerIndex(stayed, after), 0)).toEqual([]);
    });
  }
});

describe("formerOwners", () => {
  const layout = at(5, 3, [4, 8, 3]);

  it("lists the earlier owners newest count first, never the current owner", () => {
    const room = roomWhere((r) => {
      const owners = [5, 4, 8, 3].map((count) => ownerIndex(r, at(count)));
      return new Set(owners).size === 4;
    });
    expect(formerOwners(room, layout)).toEqual([
      ownerIndex(room, at(4)),
      ownerIndex(room, at(8)),
      ownerIndex(room, at(3)),
    ]);
  });

  it("names a shard once when two earlier counts put the room on it", () => {
    // 8 -> 5 -> 3: a room on index 3 or 4 under 5 had the same index under 8.
    const shrinking = at(3, 2, [5, 8]);
    const room = roomWhere((r) => {
      const [now, five, eight] = [3, 5, 8].map((count) => ownerIndex(r, at(count)));
      return five === eight && five !== now;
    });
    expect(formerOwners(room, shrinking)).toEqual([ownerIndex(room, at(5))]);
  });

  it("leaves out an earlier count that gave the room to its current owner", () => {
    const room = roomWhere((r) => {
      const [now, four, eight, three] = [5, 4, 8, 3].map((count) => ownerIndex(r, at(count)));
      return four === now && eight !== now && three === now;
    });
    expect(formerOwners(room, layout)).toEqual([ownerIndex(room, at(8))]);
  });

  it("is empty at epoch 0 and without history, for every room", () => {
    for (const room of ROOMS.slice(0, 500)) {
      expect(formerOwners(room, at(5))).toEqual([]);
      expect(formerOwners(room, at(5, 2, []))).toEqual([]);
    }
  });

  it("never holds the owner or a duplicate, over many rooms and a long history", () => {
    const history = at(6, 4, [3, 9, 6, 2]);
    let nonEmpty = 0;
    for (const room of ROOMS.slice(0, 2000)) {
      const former = formerOwners(room, history);
      expect(former).not.toContain(ownerIndex(room, history));
      expect(new Set(former).size).toBe(former.length);
      if (former.length > 0) nonEmpty++;
    }
    expect(nonEmpty).toBeGreaterThan(0);
  });
});

describe("roomsToHandAway", () => {
  it("lists only the stored rooms another shard owns, with that owner", () => {
    const layout = at(3, 1, [4]);
    const mine = ROOMS.slice(0, 40).filter((room) => ownerIndex(room, layout) === 1);
    const theirs = ROOMS.slice(0, 40).filter((room) => ownerIndex(room, layout) !== 1);
    expect(mine.length).toBeGreaterThan(0);
    expect(theirs.length).toBeGreaterThan(0);
    // Any iterable will do: the shard passes a set of storage, presence and moved-out names.
    const away = roomsToHandAway(new Set([...mine, ...theirs]), layout, 1);
    expect(away.map((a) => a.room).sort()).toEqual([...theirs].sort());
    for (const { room, owner } of away) expect(owner).toBe(ownerIndex(room, layout));
  });

  it("hands nothing away when the shard owns everything it stores", () => {
    const layout = at(4);
    const mine = ROOMS.filter((room) => ownerIndex(room, layout) === 2).slice(0, 50);
    expect(roomsToHandAway(mine, layout, 2)).toEqual([]);
    expect(roomsToHandAway([], layout, 2)).toEqual([]);
  });
});

describe("shardsToPull", () => {
  const layout = at(5, 2, [4, 8]);
  const room = roomWhere((r) => formerOwners(r, layout).length === 2);
  const owner = ownerIndex(room, layout);

  it("the owner pulls from every former owner until it has arrived at this epoch", () => {
    expect(shardsToPull(room, layout, owner, 0)).toEqual(formerOwners(room, layout));
    // Arrived at an earlier epoch only: the new resize needs a new pull.
    expect(shardsToPull(room, layout, owner, 1)).toEqual(formerOwners(room, layout));
  });

  it("nothing once arrived at this epoch (or a later one)", () => {
    expect(shardsToPull(room, layout, owner, 2)).toEqual([]);
    expect(shardsToPull(room, layout, owner, 3)).toEqual([]);
  });

  it("nothing for a shard that is not the owner, even a former one", () => {
    for (const index of [...formerOwners(room, layout), (owner + 1) % 5]) {
      expect(shardsToPull(room, layout, index, 0)).toEqual([]);
    }
  });

  it("nothing at epoch 0, even with a history to pull from", () => {
    const unresized = at(5, 0, [4, 8]);
    expect(formerOwners(room, unresized).length).toBeGreaterThan(0);
    expect(shardsToPull(room, unresized, owner, 0)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-off contents, over real Yjs documents.

/** A stored room built as a shard builds it: a snapshot, then a log of updates since. */
function storedRoom() {
  const doc = new Y.Doc();
  doc.clientID = 1;
  doc.getText("t").insert(0, "hello world");
  const snapshot = Y.encodeStateAsUpdate(doc);
  const log: Uint8Array[] = [];
  doc.on("update", (update: Uint8Array) => log.push(update));
  doc.getText("t").insert(5, ", dear");
  doc.getText("t").delete(0, 1); // a deletion of snapshot content must travel too
  doc.getMap("m").set("k", 1);
  // A second client's write, as a shard receives it.
  const other = new Y.Doc();
  other.clientID = 2;
  Y.applyUpdate(other, Y.encodeStateAsUpdate(doc));
  other.getText("t").insert(0, "H");
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(other, Y.encodeStateVector(doc)));
  expect(log).toHaveLength(4);
  const stored: StoredRoom = { snapshot, log };
  return { doc, snapshot, log, stored };
}

function contentOf(doc: Y.Doc) {
  return { text: doc.getText("t").toString(), map: doc.getMap("m").toJSON() };
}

function docFrom(...updates: Uint8Array[]): Y.Doc {
  const doc = new Y.Doc();
  for (const update of updates) Y.applyUpdate(doc, update);
  return doc;
}

const EMPTY: StoredRoom = { snapshot: null, log: [] };

describe("storedDocument and storedStateVector", () => {
  it("merge the snapshot and the log into the whole document", () => {
    const { doc, snapshot, log, stored } = storedRoom();
    expect(contentOf(docFrom(storedDocument(stored) as Uint8Array))).toEqual(contentOf(doc));
    expect(contentOf(doc)).toEqual({ text: "Hello, dear world", map: { k: 1 } });
    expect(Y.decodeStateVector(storedStateVector(stored))).toEqual(
      Y.decodeStateVector(Y.encodeStateVector(doc)),
    );
    // A lone part is returned as is; a log without a snapshot still merges.
    expect(storedDocument({ snapshot, log: [] })).toBe(snapshot);
    const logOnly = { snapshot: null, log: [snapshot, ...log] };
    expect(contentOf(docFrom(storedDocument(logOnly) as Uint8Array))).toEqual(contentOf(doc));
  });

  it("an empty room has no document and an empty state vector", () => {
    expect(storedDocument(EMPTY)).toBeNull();
    expect(Y.decodeStateVector(storedStateVector(EMPTY)).size).toBe(0);
  });
});

describe("documentBeyond and storedCoveredBy", () => {
  it("what a puller lacks makes it equal to the stored document, whatever prefix it held", () => {
    const { doc, snapshot, log, stored } = storedRoom();
    const prefixes: Uint8Array[][] = [[], [snapshot], [snapshot, log[0] as Uint8Array]];
    for (const prefix of prefixes) {
      const puller = docFrom(...prefix);
      const vector = Y.encodeStateVector(puller);
      expect(storedCoveredBy(stored, vector)).toBe(false);
      const beyond = documentBeyond(stored, vector);
      expect(carriesContent(beyond)).toBe(true);
      Y.applyUpdate(puller, beyond);
      expect(contentOf(puller)).toEqual(contentOf(doc));
      expect(Y.decodeStateVector(Y.encodeStateVector(puller))).toEqual(
        Y.decodeStateVector(Y.encodeStateVector(doc)),
      );
      expect(storedCoveredBy(stored, Y.encodeStateVector(puller))).toBe(true);
    }
  });

  it("without a vector the whole document goes", () => {
    const { doc, stored } = storedRoom();
    expect(contentOf(docFrom(documentBeyond(stored)))).toEqual(contentOf(doc));
  });

  it("a new owner that took writes of its own is covered after the hand-off, and keeps them", () => {
    const { doc, snapshot, stored } = storedRoom();
    const owner = docFrom(snapshot);
    owner.clientID = 3;
    owner.getMap("m").set("mine", true);
    expect(storedCoveredBy(stored, Y.encodeStateVector(owner))).toBe(false);
    Y.applyUpdate(owner, documentBeyond(stored, Y.encodeStateVector(owner)));
    expect(storedCoveredBy(stored, Y.encodeStateVector(owner))).toBe(true);
    expect(owner.getText("t").toString()).toBe(doc.getText("t").toString());
    expect(owner.getMap("m").toJSON()).toEqual({ k: 1, mine: true });
  });

  it("is not covered by a vector that lacks one client's last write", () => {
    const { stored } = storedRoom();
    const vector = Y.decodeStateVector(storedStateVector(stored));
    const short = new Map(vector);
    short.set(2, (vector.get(2) ?? 1) - 1);
    // The hand-made encoding is what Yjs reads back.
    expect(Y.decodeStateVector(encodeVector(short))).toEqual(short);
    expect(storedCoveredBy(stored, storedStateVector(stored))).toBe(true);
    expect(storedCoveredBy(stored, encodeVector(short))).toBe(false);
    // A vector ahead of the stored document covers it too.
    const ahead = new Map([...vector].map(([client, clock]) => [client, clock + 5]));
    expect(storedCoveredBy(stored, encodeVector(ahead))).toBe(true);
  });

  it("an empty stored room is covered by anything and hands over nothing", () => {
    expect(storedCoveredBy(EMPTY, Y.encodeStateVector(new Y.Doc()))).toBe(true);
    expect(storedCoveredBy(EMPTY, storedStateVector(storedRoom().stored))).toBe(true);
    expect(carriesContent(documentBeyond(EMPTY))).toBe(false);
    expect(carriesContent(documentBeyond(EMPTY, Y.encodeStateVector(new Y.Doc())))).toBe(false);
    // The "nothing" encoding is Yjs's own empty update.
    expect(carriesContent(Y.encodeStateAsUpdate(new Y.Doc()))).toBe(false);
  });
});

/** A state vector in Yjs's encoding (varint count, then client and clock varints). */
function encodeVector(vector: Map<number, number>): Uint8Array {
  const bytes: number[] = [];
  const varint = (n: number) => {
    let value = n;
    while (value > 0x7f) {
      bytes.push((value & 0x7f) | 0x80);
      value = Math.floor(value / 128);
    }
    bytes.push(value);
  };
  varint(vector.size);
  for (const [client, clock] of vector) {
    varint(client);
    varint(clock);
  }
  return new Uint8Array(bytes);
}

// ---------------------------------------------------------------------------------------------
// The router over a membership table's layouts.

describe("shardsOf, allShards and shardFor with a layout table", () => {
  const config = parseConfig({ shards: { weur: 4, enam: 2 } });
  const shrunk = layoutsFromEntries([
    { region: "weur", shards: 2, shardEpoch: 2, previousShards: [6, 4] },
  ]);

  it("without a table, configuration's counts", () => {
    expect(shardsOf("weur", config).map((s) => s.name)).toEqual([
      "shard:weur:0",
      "shard:weur:1",
      "shard:weur:2",
      "shard:weur:3",
    ]);
    expect(allShards(config)).toHaveLength(6);
    expect(layoutFor("weur", config)).toEqual({ count: 4, epoch: 0, previous: [] });
  });

  it("counts shards of an older, larger count; a region the table lacks keeps configuration's", () => {
    expect(layoutFor("weur", config, shrunk)).toEqual({ count: 2, epoch: 2, previous: [6, 4] });
    expect(shardsOf("weur", config, shrunk).map((s) => s.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(shardsOf("enam", config, shrunk)).toHaveLength(2);
    const all = allShards(config, shrunk);
    expect(all.map((s) => s.name)).toEqual([
      ...[0, 1, 2, 3, 4, 5].map((i) => `shard:weur:${i}`),
      "shard:enam:0",
      "shard:enam:1",
    ]);
    const grown = layoutsFromEntries([
      { region: "weur", shards: 8, shardEpoch: 1, previousShards: [4] },
    ]);
    expect(shardsOf("weur", config, grown)).toHaveLength(8);
  });

  it("shardFor follows the table where it differs from configuration", () => {
    const room = roomWhere((r) => ownerIndex(r, at(2)) !== ownerIndex(r, at(4)));
    const configured = shardFor(room, "weur", config);
    const routed = shardFor(room, "weur", config, shrunk);
    expect(configured.index).toBe(ownerIndex(room, at(4)));
    expect(routed).toEqual({
      region: "weur",
      index: ownerIndex(room, at(2)),
      name: `shard:weur:${ownerIndex(room, at(2))}`,
    });
    expect(routed.index).not.toBe(configured.index);
    expect(shardFor(room, "enam", config, shrunk)).toEqual(shardFor(room, "enam", config));
  });
});

// ---------------------------------------------------------------------------------------------
// Membership: the resize, its persistence and gossip, and hot shards.

function startWeur(
  shards = 4,
  options: { persisted?: PersistedMembership; now?: number; hot?: boolean } = {},
): MembershipNode {
  return MembershipNode.start(
    {
      region: "weur",
      shards,
      seeds: [],
      ...(options.hot ? { loadTarget: { connections: 100, messagesPerSecond: 50 } } : {}),
    },
    SETTINGS,
    options.now ?? T0,
    options.persisted,
  );
}

function syn(from: MembershipNode, now: number, nonce = 1000): GossipMessage {
  return { kind: "syn", from: from.region, nonce, digest: from.view(now).entries.map(digestOf) };
}

/** One push-pull exchange started by `a`: syn, ack, ack2. */
function exchange(a: MembershipNode, b: MembershipNode, now: number): void {
  for (const ack of b.receive(syn(a, now), now)) {
    for (const ack2 of a.receive(ack, now)) b.receive(ack2, now);
  }
}

describe("MembershipNode.resize", () => {
  it("takes the new count under the next epoch and keeps the old count first in history", () => {
    const node = startWeur(4);
    const before = node.entry("weur") as RegionEntry;
    const revision = node.revision;
    const after = node.resize(T0 + 10, 6);
    expect(after).toMatchObject({ shards: 6, shardEpoch: 1, previousShards: [4] });
    expect(after.heartbeat).toBe(before.heartbeat + 1);
    // New content (sent whole, not as a beat) and worth persisting.
    expect(after.contentAt).toBe(after.heartbeat);
    expect(node.revision).toBe(revision + 1);
    expect(node.entry("weur")).toBe(after);
    expect(node.resize(T0 + 20, 3)).toMatchObject({
      shards: 3,
      shardEpoch: 2,
      previousShards: [6, 4],
    });
  });

  it("keeps at most SHARD_HISTORY earlier counts, newest first", () => {
    expect(SHARD_HISTORY).toBe(4);
    const node = startWeur(4);
    for (const [i, count] of [6, 8, 2, 3, 5].entries()) node.resize(T0 + i, count);
    expect(node.entry("weur")).toMatchObject({
      shards: 5,
      shardEpoch: 5,
      previousShards: [3, 2, 8, 6],
    });
  });

  it("the same count again changes nothing and returns the same entry object", () => {
    const node = startWeur(4);
    node.resize(T0 + 1, 6);
    const entry = node.entry("weur") as RegionEntry;
    const revision = node.revision;
    expect(node.resize(T0 + 2, 6)).toBe(entry);
    expect(node.entry("weur")).toBe(entry);
    expect(node.revision).toBe(revision);
  });
});

describe("MembershipNode: the shard layout across a restart", () => {
  it("a restart keeps the resized count, its epoch and history, over configuration's count", () => {
    const first = startWeur(4);
    first.resize(T0 + 1, 6);
    first.resize(T0 + 2, 3);
    // Stored as JSON by the directory.
    const stored = JSON.parse(JSON.stringify(first.persisted())) as PersistedMembership;
    expect(stored.shards).toEqual({ count: 3, epoch: 2, previous: [6, 4] });
    const again = startWeur(4, { persisted: stored, now: T0 + 5_000 });
    expect(again.entry("weur")).toMatchObject({
      shards: 3,
      shardEpoch: 2,
      previousShards: [6, 4],
      incarnation: (first.entry("weur")?.incarnation ?? -1) + 1,
    });
    // The next resize continues the epoch rather than restarting it.
    expect(again.resize(T0 + 6_000, 5)).toMatchObject({
      shardEpoch: 3,
      previousShards: [3, 6, 4],
    });
  });

  it("stored state at epoch 0, or from before resizes existed, takes configuration's count", () => {
    const fresh = startWeur(4).persisted();
    expect(fresh.shards).toEqual({ count: 4, epoch: 0, previous: [] });
    const epochZero = { ...fresh, shards: { count: 9, epoch: 0, previous: [7] } };
    expect(startWeur(2, { persisted: epochZero }).entry("weur")).toMatchObject({
      shards: 2,
      shardEpoch: 0,
      previousShards: [],
    });
    const { shards: _, ...older } = fresh;
    expect(startWeur(3, { persisted: older }).entry("weur")).toMatchObject({
      shards: 3,
      shardEpoch: 0,
      previousShards: [],
    });
  });
});

describe("MembershipNode: a resize gossips", () => {
  it("another region's table gets the new count, epoch and history, and routes by them", () => {
    const weur = startWeur(4);
    const enam = MembershipNode.start({ region: "enam", shards: 2, seeds: ["weur"] }, SETTINGS, T0);
    exchange(weur, enam, T0 + 1);
    expect(enam.entry("weur")).toMatchObject({ shards: 4, shardEpoch: 0, previousShards: [] });

    weur.resize(T0 + 2, 6);
    exchange(weur, enam, T0 + 3);
    expect(enam.entry("weur")).toMatchObject({ shards: 6, shardEpoch: 1, previousShards: [4] });
    expect(enam.entry("weur")).toEqual(weur.entry("weur"));

    // The Worker reads the table through the boundary schema, as here.
    const table = membershipViewSchema.parse(enam.view(T0 + 3));
    const layouts = layoutsFromEntries(table.entries);
    expect(layouts("weur")).toEqual({ count: 6, epoch: 1, previous: [4] });
    const config = parseConfig({ shards: { weur: 4, enam: 2 } });
    const room = roomWhere((r) => ownerIndex(r, at(6)) !== ownerIndex(r, at(4)));
    expect(shardFor(room, "weur", config, layouts).index).toBe(ownerIndex(room, at(6)));
  });
});

describe("MembershipNode: shard loads and hot shards", () => {
  it("names the shards over either figure of the target, hottest first, and sums every report", () => {
    const node = startWeur(4, { hot: true });
    node.reportShardLoad(T0 + 1, 0, { connections: 150, rooms: 3, messagesPerSecond: 10 });
    node.reportShardLoad(T0 + 2, 1, { connections: 10, rooms: 1, messagesPerSecond: 200 });
    node.reportShardLoad(T0 + 3, 2, { connections: 50, rooms: 2, messagesPerSecond: 10 });
    // Exactly at the target is not over it.
    node.reportShardLoad(T0 + 4, 3, { connections: 100, rooms: 1, messagesPerSecond: 50 });
    const self = node.entry("weur") as RegionEntry;
    expect(self.hotShards).toEqual([
      { shard: 1, connections: 10, rooms: 1, messagesPerSecond: 200 },
      { shard: 0, connections: 150, rooms: 3, messagesPerSecond: 10 },
    ]);
    expect(self.load).toEqual({ connections: 310, rooms: 7 });
    expect(self.contentAt).toBe(self.heartbeat);
    expect(node.shardLoads().map((s) => s.shard)).toEqual([0, 1, 2, 3]);
    expect(node.shardLoads()[3]).toEqual({
      shard: 3,
      connections: 100,
      rooms: 1,
      messagesPerSecond: 50,
    });
  });

  it("a shard that cools leaves the list; one that heats up joins it in order", () => {
    const node = startWeur(4, { hot: true });
    node.reportShardLoad(T0 + 1, 0, { connections: 150, rooms: 3, messagesPerSecond: 10 });
    node.reportShardLoad(T0 + 2, 1, { connections: 10, rooms: 1, messagesPerSecond: 200 });
    node.reportShardLoad(T0 + 3, 1, { connections: 10, rooms: 1, messagesPerSecond: 5 });
    expect(node.entry("weur")?.hotShards.map((s) => s.shard)).toEqual([0]);
    node.reportShardLoad(T0 + 4, 2, { connections: 400, rooms: 9, messagesPerSecond: 0 });
    expect(node.entry("weur")?.hotShards.map((s) => s.shard)).toEqual([2, 0]);
    node.reportShardLoad(T0 + 5, 0, { connections: 0, rooms: 0, messagesPerSecond: 0 });
    node.reportShardLoad(T0 + 6, 2, { connections: 1, rooms: 1 });
    expect(node.entry("weur")?.hotShards).toEqual([]);
    // A report without a rate counts as 0 frames per second.
    expect(node.shardLoads().find((s) => s.shard === 2)?.messagesPerSecond).toBe(0);
  });

  it(`names at most MAX_HOT_SHARDS (${MAX_HOT_SHARDS}), the hottest`, () => {
    const node = startWeur(16, { hot: true });
    for (let shard = 0; shard < 12; shard++) {
      node.reportShardLoad(T0 + shard, shard, {
        connections: 200 + shard * 10,
        rooms: 1,
        messagesPerSecond: 0,
      });
    }
    const hot = node.entry("weur")?.hotShards ?? [];
    expect(hot).toHaveLength(MAX_HOT_SHARDS);
    expect(hot.map((s) => s.shard)).toEqual([11, 10, 9, 8, 7, 6, 5, 4]);
    expect(node.shardLoads()).toHaveLength(12);
  });

  it("forgets a shard beyond the count once it reports nothing left, not one within it", () => {
    const node = startWeur(4, { hot: true });
    for (let shard = 0; shard < 3; shard++) {
      node.reportShardLoad(T0, shard, { connections: 5, rooms: 1, messagesPerSecond: 1 });
    }
    node.reportShardLoad(T0, 3, { connections: 500, rooms: 9, messagesPerSecond: 1 });
    expect(node.entry("weur")?.hotShards.map((s) => s.shard)).toEqual([3]);
    node.resize(T0 + 1, 2);
    // Still draining: shard 2 stays while it holds rooms.
    node.reportShardLoad(T0 + 2, 2, { connections: 0, rooms: 1, messagesPerSecond: 0 });
    node.reportShardLoad(T0 + 3, 3, { connections: 0, rooms: 0, messagesPerSecond: 0 });
    node.reportShardLoad(T0 + 4, 1, { connections: 0, rooms: 0, messagesPerSecond: 0 });
    expect(node.shardLoads().map((s) => s.shard)).toEqual([0, 1, 2]);
    expect(node.entry("weur")).toMatchObject({
      hotShards: [],
      load: { connections: 5, rooms: 2 },
    });
  });

  it("without a load target no shard is hot", () => {
    const node = startWeur(4);
    node.reportShardLoad(T0, 0, { connections: 1_000_000, rooms: 1, messagesPerSecond: 1e6 });
    expect(node.entry("weur")).toMatchObject({
      hotShards: [],
      load: { connections: 1_000_000, rooms: 1 },
    });
  });
});

describe("regionEntrySchema and the new fields", () => {
  it("accepts the entries a resized node with hot shards writes and gossips", () => {
    const node = startWeur(4, { hot: true });
    for (const [i, count] of [6, 8, 2, 3, 5].entries()) node.resize(T0 + i, count);
    for (let shard = 0; shard < 10; shard++) {
      node.reportShardLoad(T0 + 10, shard, { connections: 500, rooms: 1, messagesPerSecond: 0 });
    }
    const entry = node.entry("weur") as RegionEntry;
    expect(entry.previousShards).toHaveLength(SHARD_HISTORY);
    expect(entry.hotShards).toHaveLength(MAX_HOT_SHARDS);
    expect(regionEntrySchema.safeParse(entry).success).toBe(true);
    const enam = MembershipNode.start({ region: "enam", shards: 2, seeds: ["weur"] }, SETTINGS, T0);
    exchange(node, enam, T0 + 20);
    for (const e of enam.view(T0 + 20).entries) {
      const { lastHeardMsAgo: _, ...plain } = e;
      expect(regionEntrySchema.safeParse(plain).success).toBe(true);
    }
  });

  it("rejects a fifth earlier count, a ninth hot shard, and an entry missing the epoch", () => {
    const entry = startWeur(4).resize(T0 + 1, 6);
    const tooLong = regionEntrySchema.safeParse({ ...entry, previousShards: [1, 2, 3, 4, 5] });
    expect(tooLong.success).toBe(false);
    expect(tooLong.error?.issues[0]?.path).toEqual(["previousShards"]);
    const hot = { shard: 0, connections: 1, rooms: 1, messagesPerSecond: 1 };
    const tooHot = Array.from({ length: MAX_HOT_SHARDS + 1 }, (_, shard) => ({ ...hot, shard }));
    expect(regionEntrySchema.safeParse({ ...entry, hotShards: tooHot }).success).toBe(false);
    const { shardEpoch: _, ...noEpoch } = entry;
    expect(regionEntrySchema.safeParse(noEpoch).success).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Configuration.

describe("parseConfig: rebalance", () => {
  it("fills the defaults, and a partial section keeps the rest", () => {
    expect(parseConfig({ shards: { weur: 2 } }).rebalance).toEqual({
      hotConnections: 20_000,
      hotMessagesPerSecond: 1_000,
      handOffTimeoutMs: 2_000,
      retryMs: 5_000,
      movedGraceMs: 5_000,
    });
    const partial = parseConfig({ shards: { weur: 2 }, rebalance: { retryMs: 1_000 } });
    expect(partial.rebalance).toMatchObject({ retryMs: 1_000, handOffTimeoutMs: 2_000 });
  });

  it("a bad value is refused with the field's full name", () => {
    for (const handOffTimeoutMs of [5, 60_001, 1.5, "2000"]) {
      expect(() => parseConfig({ shards: { weur: 2 }, rebalance: { handOffTimeoutMs } })).toThrow(
        /HALO_CONFIG\.rebalance\.handOffTimeoutMs/,
      );
    }
    expect(() => parseConfig({ shards: { weur: 2 }, rebalance: { retryMs: 99 } })).toThrow(
      /HALO_CONFIG\.rebalance\.retryMs/,
    );
    expect(() => parseConfig({ shards: { weur: 2 }, rebalance: { hotConnections: 0 } })).toThrow(
      /HALO_CONFIG\.rebalance\.hotConnections/,
    );
    expect(() => parseConfig({ shards: { weur: 2 }, rebalance: { movedGraceMs: -1 } })).toThrow(
      /HALO_CONFIG\.rebalance\.movedGraceMs/,
    );
    // The section is strict: a misspelt field is an error, not silently ignored.
    expect(() => parseConfig({ shards: { weur: 2 }, rebalance: { retryMS: 1_000 } })).toThrow(
      /HALO_CONFIG\.rebalance/,
    );
  });
});
