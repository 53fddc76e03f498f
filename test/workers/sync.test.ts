import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { configFromEnv } from "../../src/config/config-schema";
import { shardFor } from "../../src/routing/shard-router";
import { documentOf, eventually, TestClient, textOf, untilServerText } from "./client";

function shardStub(room: string, region: "wnam" | "weur" | "apac" = "wnam") {
  const shard = shardFor(room, region, configFromEnv(env));
  return { shard, stub: env.SHARD.get(env.SHARD.idFromName(shard.name)) };
}

describe("routing", () => {
  it("lands each room on shard:{region}:{jump(hash(room), shards)} and nowhere else", async () => {
    const rooms = Array.from({ length: 12 }, (_, i) => `route-${i}`);
    const clients = await Promise.all(rooms.map((room) => TestClient.connect(room)));
    const usedShards = new Set<string>();
    for (const room of rooms) {
      const { shard, stub } = shardStub(room);
      usedShards.add(shard.name);
      const summary = await runInDurableObject(stub, (instance) => instance.summary(room));
      expect(summary.connections, `${room} on ${shard.name}`).toBe(1);
      for (let index = 0; index < 4; index++) {
        if (index === shard.index) continue;
        const other = env.SHARD.get(env.SHARD.idFromName(`shard:wnam:${index}`));
        // (A room call on another shard would be passed on to the owner: count sockets instead.)
        const elsewhere = await runInDurableObject(
          other,
          (_instance, state) => state.getWebSockets(room).length,
        );
        expect(elsewhere).toBe(0);
      }
    }
    expect(usedShards.size).toBeGreaterThan(1); // 12 rooms over 4 shards use more than one
    for (const client of clients) client.close();
  });

  it("routes to the region named by ?region= when configuration allows it", async () => {
    const client = await TestClient.connect("route-region", "?region=apac");
    const { shard, stub } = shardStub("route-region", "apac");
    expect(shard.name).toMatch(/^shard:apac:[01]$/);
    await eventually(() => client.frames.length > 0, 2000, "sync step 1");
    const summary = await runInDurableObject(stub, (instance) => instance.summary("route-region"));
    expect(summary.connections).toBe(1);
    client.close();
  });
});

describe("document sync in workerd", () => {
  it("converges two clients and persists every update in SQLite", async () => {
    const a = await TestClient.connect("sync-basic");
    const b = await TestClient.connect("sync-basic");
    a.doc.getText("t").insert(0, "hello");
    await eventually(() => b.text === "hello", 2000, "b to see a's edit");
    b.doc.getText("t").insert(5, " world");
    await eventually(() => a.text === "hello world", 2000, "a to see b's edit");

    const { stub } = shardStub("sync-basic");
    const rows = await runInDurableObject(
      stub,
      (_instance, state) =>
        state.storage.sql
          .exec<{ n: number }>("SELECT COUNT(*) AS n FROM room_log WHERE room = ?", "sync-basic")
          .one().n,
    );
    expect(rows).toBeGreaterThanOrEqual(2);
    a.close();
    b.close();
  });

  it("keeps the document across a Durable Object restart", async () => {
    const a = await TestClient.connect("sync-restart");
    a.doc.getText("t").insert(0, "survives restarts");
    const { stub } = shardStub("sync-restart");
    await untilServerText("sync-restart", "survives restarts");
    a.close();
    await evictDurableObject(stub, { webSockets: "close" });
    const b = await TestClient.connect("sync-restart");
    await eventually(
      () => b.text === "survives restarts",
      2000,
      "the restarted shard to serve the document",
    );
    b.close();
  });

  it("compacts the log into a snapshot split into rows of at most maxRowBytes", async () => {
    const room = "sync-compact";
    const a = await TestClient.connect(room);
    const text = a.doc.getText("t");
    // 30 updates of ~400 bytes: past compactAfterUpdates (20) and past maxRowBytes (4096) in total.
    for (let i = 0; i < 30; i++)
      text.insert(text.length, `${String(i).padStart(3, "0")}:${"x".repeat(400)}\n`);
    const expected = text.toString();
    const { stub } = shardStub(room);
    const observe = () =>
      runInDurableObject(stub, (_instance, state) => {
        const sql = state.storage.sql;
        const snapshotRows = sql
          .exec<{ n: number; max: number }>(
            "SELECT COUNT(*) AS n, MAX(LENGTH(data)) AS max FROM room_snapshot WHERE room = ?",
            room,
          )
          .one();
        const logRows = sql
          .exec<{ n: number }>("SELECT COUNT(*) AS n FROM room_log WHERE room = ?", room)
          .one().n;
        return { snapshotRows: snapshotRows.n, maxRow: snapshotRows.max, logRows };
      });
    let stored = await observe();
    for (let i = 0; i < 100 && stored.snapshotRows === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      stored = await observe();
    }
    expect(stored.snapshotRows).toBeGreaterThan(1); // the snapshot (> 12 KB) spans several rows
    expect(stored.maxRow).toBeLessThanOrEqual(4096);
    expect(stored.logRows).toBeLessThan(20);
    a.close();

    await evictDurableObject(stub, { webSockets: "close" });
    expect(textOf(await documentOf(room))).toBe(expected);
  });

  it("unloads idle rooms beyond maxRoomsInMemory and reloads them on demand", async () => {
    // Six rooms that jump hash puts on the same shard (maxRoomsInMemory is 3 in this config).
    const rooms = Array.from({ length: 200 }, (_, i) => `idle-${i}`)
      .filter((room) => shardFor(room, "wnam", configFromEnv(env)).index === 0)
      .slice(0, 6);
    expect(rooms).toHaveLength(6);
    for (const room of rooms) {
      const client = await TestClient.connect(room);
      client.doc.getText("t").insert(0, `text of ${room}`);
      await untilServerText(room, `text of ${room}`);
      client.close();
      await client.closedWith();
    }
    const { stub } = shardStub(rooms[0] as string);
    // A room whose replica still takes part in replication stays loaded until it has been idle
    // for `replication.idleLeaveMs` (1 s here); the shard's alarm then unloads it.
    await eventually(
      async () => (await runInDurableObject(stub, (instance) => instance.stats().loadedRooms)) <= 3,
      8000,
      "idle rooms unloaded down to maxRoomsInMemory",
    );
    for (const room of rooms) expect(textOf(await documentOf(room))).toBe(`text of ${room}`);
  });
});
