import { env, runInDurableObject, SELF } from "cloudflare:test";
import { afterAll, describe, expect, it } from "vitest";
import * as Y from "yjs";
import type { ShardDurableObject } from "../../durable-objects/shard";
import { shardStub } from "../../src/http/shard-stub";
import { CloseCode } from "../../src/protocol/close-codes";
import { shardIndexFor } from "../../src/routing/jump-hash";
import { shardAt } from "../../src/routing/shard-router";
import { admin } from "./admin";
import { documentOf, eventually, TestClient, textOf } from "./client";

/**
 * Rebalancing inside workerd (DESIGN.md, "Routing"): an operator resizes wnam's shards while
 * clients are connected in many rooms. Only the rooms jump hash moves, move; their clients are
 * closed with `moved`, reconnect as a stock provider does, and find every edit; the old shard
 * drops its copy once the new one holds it all.
 */

const REGION = "wnam";
const ROOMS = Array.from({ length: 16 }, (_, i) => `rebalance-room-${i}`);

/** One wnam shard's RPC surface, called directly (as a caller on an old layout would). */
function shard(index: number) {
  return shardStub(env.SHARD, shardAt(REGION, index));
}

/** Document rows a shard stores for a room (snapshot and log parts). */
async function storedRows(index: number, room: string): Promise<number> {
  const object = env.SHARD.get(env.SHARD.idFromName(shardAt(REGION, index).name));
  return runInDurableObject(object, (_instance: ShardDurableObject, state) => {
    const row = state.storage.sql
      .exec<{ n: number }>(
        "SELECT (SELECT COUNT(*) FROM room_snapshot WHERE room = ?1) + (SELECT COUNT(*) FROM room_log WHERE room = ?1) AS n",
        room,
      )
      .one();
    return row.n;
  });
}

async function resize(shards: number) {
  const response = await admin("POST", `/v1/admin/regions/${REGION}/shards`, { shards });
  expect(response.status).toBe(200);
  return (await response.json()) as {
    entry: { shards: number; shardEpoch: number; previousShards: number[] };
    shards: Array<{ shard: number; handedAway?: number; pending?: number; error?: string }>;
  };
}

/** A stock provider's reconnect: a new socket, the same clientID, and the doc it kept. */
async function reconnect(old: TestClient, room: string): Promise<TestClient> {
  const next = await TestClient.connect(room, "", old.doc.clientID);
  Y.applyUpdate(next.doc, Y.encodeStateAsUpdate(old.doc));
  return next;
}

afterAll(async () => {
  await resize(4); // other files route wnam by four shards
});

describe("resizing a region's shards with clients connected", () => {
  it("4 to 5 and 5 to 3: only the rooms jump hash moves, move, and no edit is lost", async () => {
    // Every room: one writer and one watcher, the writer's edit stored before the resize.
    let writers = new Map<string, TestClient>();
    let watchers = new Map<string, TestClient>();
    for (const [i, room] of ROOMS.entries()) {
      const writer = await TestClient.connect(room, "", 7_000 + i);
      const watcher = await TestClient.connect(room, "", 8_000 + i);
      writer.doc.getText("t").insert(0, `before-${i};`);
      writers.set(room, writer);
      watchers.set(room, watcher);
    }
    for (const [i, room] of ROOMS.entries())
      await eventually(() => watchers.get(room)?.text === `before-${i};`, 3000, `watcher ${room}`);

    let expected = new Map(ROOMS.map((room, i) => [room, `before-${i};`]));
    for (const [from, to] of [
      [4, 5],
      [5, 3],
    ] as const) {
      const moving = ROOMS.filter((room) => shardIndexFor(room, from) !== shardIndexFor(room, to));
      const staying = ROOMS.filter((room) => !moving.includes(room));
      // Jump hash moves about |to - from| / max(to, from) of the rooms, and never all of them.
      expect(moving.length).toBeGreaterThan(0);
      expect(staying.length).toBeGreaterThan(0);

      const answer = await resize(to);
      expect(answer.entry.shards).toBe(to);
      expect(answer.entry.previousShards[0]).toBe(from);
      expect(answer.shards.every((report) => report.error === undefined)).toBe(true);

      // The moved rooms' sockets are closed with `moved`; the others stay open.
      for (const room of moving) {
        await eventually(
          () => writers.get(room)?.closeEvent?.code === CloseCode.Moved,
          3000,
          `moved close in ${room}`,
        );
        expect(watchers.get(room)?.closeEvent?.code).toBe(CloseCode.Moved);
      }
      for (const room of staying) expect(writers.get(room)?.closeEvent).toBeNull();

      // Each old shard dropped its copy; the new owner holds the room.
      for (const room of moving) {
        await eventually(
          async () => (await storedRows(shardIndexFor(room, from), room)) === 0,
          3000,
          `old copy of ${room} dropped`,
        );
        expect(await storedRows(shardIndexFor(room, to), room)).toBeGreaterThan(0);
      }

      // Clients reconnect as stock providers do, and keep editing; nothing is lost.
      const nextWriters = new Map<string, TestClient>();
      const nextWatchers = new Map<string, TestClient>();
      for (const room of ROOMS) {
        const writer = writers.get(room) as TestClient;
        const watcher = watchers.get(room) as TestClient;
        const moved = moving.includes(room);
        nextWriters.set(room, moved ? await reconnect(writer, room) : writer);
        nextWatchers.set(room, moved ? await reconnect(watcher, room) : watcher);
      }
      writers = nextWriters;
      watchers = nextWatchers;
      expected = new Map(
        ROOMS.map((room) => {
          const edit = `after-${to};`;
          const writer = writers.get(room) as TestClient;
          writer.doc.getText("t").insert(writer.doc.getText("t").length, edit);
          return [room, `${expected.get(room)}${edit}`];
        }),
      );
      for (const room of ROOMS) {
        await eventually(
          async () => textOf(await documentOf(room)) === expected.get(room),
          3000,
          `server text of ${room}`,
        );
        await eventually(
          () => watchers.get(room)?.text === expected.get(room),
          3000,
          `watcher text of ${room}`,
        );
      }

      // A call routed by the old layout reaches the owner through the old shard.
      const probe = moving[0] as string;
      const viaOld = await shard(shardIndexFor(probe, from)).summary(probe);
      expect(viaOld.connections).toBe(2);
    }
    for (const client of [...writers.values(), ...watchers.values()]) client.close();
  });

  it("members move with their room: present throughout, and one not back turns reconnecting", async () => {
    const room = ROOMS.find((name) => shardIndexFor(name, 4) !== shardIndexFor(name, 3));
    if (!room) throw new Error("no room moves from 4 to 3 shards");
    await resize(4);
    const writer = await TestClient.connect(room, "", 9_001);
    writer.setAwareness({ name: "writer" }, 1);
    const leaver = await TestClient.connect(room, "", 9_002);
    leaver.setAwareness({ name: "leaver" }, 1);
    await eventually(async () => {
      const members = await shard(shardIndexFor(room, 4)).members(room);
      return members.filter((member) => member.clientId >= 9_001).length === 2;
    });
    await resize(3);
    await eventually(() => writer.closeEvent?.code === CloseCode.Moved, 3000, "moved close");
    // Before anyone is back, the new owner holds both members, still present (no flicker).
    const held = await shard(shardIndexFor(room, 3)).members(room);
    expect(held.filter((m) => m.clientId >= 9_001).map((m) => m.status)).toEqual([
      "present",
      "present",
    ]);
    const back = await reconnect(writer, room);
    back.setAwareness({ name: "writer" }, 2);
    // The writer is back present; the leaver, not back within rebalance.movedGraceMs (1 s
    // here), turns reconnecting for its grace, as after any dropped connection.
    await eventually(
      async () => {
        const members = await shard(shardIndexFor(room, 3)).members(room);
        const status = (id: number) => members.find((m) => m.clientId === id)?.status;
        return status(9_001) === "present" && status(9_002) === "reconnecting";
      },
      3000,
      "writer present, leaver reconnecting",
    );
    const history = await shard(shardIndexFor(room, 3)).presenceHistory(room, { limit: 1000 });
    const writerStatuses = history.events.filter(
      (event) => event.type === "member.status" && event.member.clientId === 9_001,
    );
    expect(writerStatuses).toEqual([]);
    back.close();
  });

  it("a resize names the field when the count is bad, and needs the admin token", async () => {
    const bad = await admin("POST", `/v1/admin/regions/${REGION}/shards`, { shards: 0 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { field: string } }).error.field).toBe("shards");
    const unknown = await admin("POST", "/v1/admin/regions/oc/shards", { shards: 2 });
    expect(unknown.status).toBe(404);
  });
});

describe("a room whose old shard was never told", () => {
  it("is pulled by its new owner on first use, before the first client syncs", async () => {
    const room = Array.from({ length: 50 }, (_, i) => `rebalance-pull-${i}`).find(
      (name) => shardIndexFor(name, 4) !== shardIndexFor(name, 2),
    );
    if (!room) throw new Error("no room moves from 4 to 2 shards");
    await resize(4);
    const writer = await TestClient.connect(room, "", 9_101);
    writer.doc.getText("t").insert(0, "written on the old shard");
    await eventually(async () => (await storedRows(shardIndexFor(room, 4), room)) > 0);
    writer.close();
    // Only the directory hears of the resize: no shard is told to hand anything away.
    const directory = env.DIRECTORY.get(env.DIRECTORY.idFromName(`directory:${REGION}`));
    await directory.resize(REGION, 2);
    // Once the Worker's copy of the table is older than membership.cacheMs (100 ms here), it
    // routes by the new layout; the new owner has never heard of the room.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const reader = await TestClient.connect(room, "", 9_102);
    await eventually(() => reader.text === "written on the old shard", 3000, "pulled text");
    expect(await storedRows(shardIndexFor(room, 4), room)).toBe(0);
    reader.close();
    await resize(4);
  });
});

describe("draining a region", () => {
  afterAll(async () => {
    await admin("POST", "/v1/admin/regions/weur/undrain");
  });

  it("tells its clients to move; they reconnect to the next region and find their edits", async () => {
    const room = "rebalance-drain";
    const writer = await TestClient.connect(room, "?region=weur", 9_201);
    writer.doc.getText("t").insert(0, "typed in weur");
    await eventually(
      async () => textOf(await documentOf(room, "?region=weur")) === "typed in weur",
      3000,
      "weur's copy",
    );
    const drained = await admin("POST", "/v1/admin/regions/weur/drain");
    expect(drained.status).toBe(200);
    const body = (await drained.json()) as { shards: Array<{ socketsMoved?: number }> };
    expect(body.shards.reduce((sum, report) => sum + (report.socketsMoved ?? 0), 0)).toBe(1);
    await eventually(() => writer.closeEvent?.code === CloseCode.Moved, 3000, "moved close");
    // The same client asks for weur again: the Worker sends it to the next nearest region,
    // which gets the room's state from the replicas that had it.
    const back = await TestClient.connect(room, "?region=weur", 9_201);
    await eventually(() => back.text === "typed in weur", 5000, "text after the drain");
    const regions = await SELF.fetch("http://halo.test/v1/regions?region=weur");
    const table = (await regions.json()) as {
      clientRegion: string;
      regions: Array<{ region: string; status: string; drain: string | null }>;
    };
    expect(table.clientRegion).not.toBe("weur");
    expect(table.regions.find((entry) => entry.region === "weur")?.status).toBe("left");
    back.close();
  });
});

describe("hot shards", () => {
  it("a shard over its connection target is named in its region's entry", async () => {
    const room = "rebalance-hot";
    const clients = await Promise.all(
      Array.from({ length: 7 }, () => TestClient.connect(room, "?region=apac")),
    );
    const index = shardIndexFor(room, 2);
    await eventually(
      async () => {
        const response = await SELF.fetch("http://halo.test/v1/regions?region=apac");
        const table = (await response.json()) as {
          regions: Array<{
            region: string;
            hotShards: Array<{ shard: number; connections: number }>;
          }>;
        };
        const apac = table.regions.find((entry) => entry.region === "apac");
        return apac?.hotShards.some((hot) => hot.shard === index && hot.connections >= 7) === true;
      },
      3000,
      "apac's hot shard in the table",
    );
    // The operator's view of that shard names the room that makes it hot.
    const shards = (await (await admin("GET", "/v1/admin/shards")).json()) as {
      shards: Array<{
        name: string;
        busiestRooms: Array<{ room: string; connections: number }>;
      }>;
    };
    const hot = shards.shards.find((entry) => entry.name === `shard:apac:${index}`);
    expect(hot?.busiestRooms[0]).toMatchObject({ room, connections: 7 });
    for (const client of clients) client.close();
    // Cooled down: the next report takes it off the list.
    await eventually(
      async () => {
        const response = await SELF.fetch("http://halo.test/v1/regions?region=apac");
        const table = (await response.json()) as {
          regions: Array<{ region: string; hotShards: unknown[] }>;
        };
        return table.regions.find((entry) => entry.region === "apac")?.hotShards.length === 0;
      },
      3000,
      "apac cooled",
    );
  });
});
