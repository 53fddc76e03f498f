import { env, runInDurableObject, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import type { ShardDurableObject } from "../../durable-objects/shard";
import { parseConfig } from "../../src/config/config-schema";
import { shardFor } from "../../src/routing/shard-router";
import { admin } from "./admin";
import { eventually, TestClient, textOf } from "./client";

// vitest.workers.config.ts: regions wnam, weur, apac (fault injection on); replication batches
// every 10 ms, anti-entropy every 500 ms. Each region's replica is its own shard Durable Object,
// talking to the others over real RPC.
const REGIONS = ["wnam", "weur", "apac"] as const;
const config = parseConfig(env.HALO_CONFIG);

interface PresenceBody {
  consistency: string;
  members: Array<{ clientId: number; region: string; userId: string; state: unknown }>;
  sources: Array<{ region: string; members: number; ageMs: number | null; answered?: boolean }>;
}

async function presence(
  room: string,
  region: string,
  consistency = "local",
): Promise<PresenceBody> {
  const response = await SELF.fetch(
    `http://halo.test/v1/rooms/${room}/presence?region=${region}&consistency=${consistency}`,
  );
  expect(response.status).toBe(200);
  return (await response.json()) as PresenceBody;
}

/** One client per region, each with a name in its awareness state. */
async function clientsIn(room: string): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (const region of REGIONS) {
    const client = await TestClient.connect(room, `?region=${region}&user=${region}-user`);
    client.setAwareness({ name: `in ${region}` }, 1);
    clients.push(client);
  }
  return clients;
}

function seesEveryone(client: TestClient, all: readonly TestClient[]): boolean {
  return all.every((other) => client.awareness.get(other.doc.clientID)?.state != null);
}

async function everyRegionAlive(): Promise<boolean> {
  for (const from of REGIONS) {
    const response = await SELF.fetch(`http://halo.test/v1/regions?region=${from}`);
    const body = (await response.json()) as { regions: Array<{ status: string }> };
    if (body.regions.some((row) => row.status !== "alive")) return false;
  }
  return true;
}

const open: TestClient[] = [];
afterEach(async () => {
  for (const client of open.splice(0)) client.close();
  expect((await admin("DELETE", "/v1/admin/faults")).status).toBe(200);
  await eventually(everyRegionAlive, 10_000, "every region alive again");
});

describe("replication between regions inside workerd (real shards, RPC, SQLite)", () => {
  it("three regions, a client in each: edits, cursors and presence converge everywhere", async () => {
    const room = "repl-three";
    const clients = await clientsIn(room);
    open.push(...clients);
    clients.forEach((client, i) => {
      client.doc.getText("t").insert(0, `[${REGIONS[i]}]`);
    });
    const expected = (text: string) => REGIONS.every((r) => text.includes(`[${r}]`));
    await eventually(
      () =>
        clients.every((c) => expected(c.text)) && new Set(clients.map((c) => c.text)).size === 1,
      5000,
      "every client to hold every region's edit, in the same order",
    );
    await eventually(
      () => clients.every((c) => seesEveryone(c, clients)),
      5000,
      "every stock client to see the cursors of the other regions",
    );
    // Presence: every region's replica lists all three members, each with its own region.
    for (const region of REGIONS) {
      await eventually(
        async () => (await presence(room, region)).members.length === 3,
        5000,
        `${region}'s replica to list three members`,
      );
      const body = await presence(room, region);
      expect(body.consistency).toBe("local");
      expect(body.members.map((m) => [m.userId, m.region]).sort()).toEqual([
        ["apac-user", "apac"],
        ["weur-user", "weur"],
        ["wnam-user", "wnam"],
      ]);
      expect(body.sources.map((s) => [s.region, s.members])).toEqual([
        ["apac", 1],
        ["weur", 1],
        ["wnam", 1],
      ]);
    }
    // consistency=all asks each other region for its own members, and says they answered.
    const all = await presence(room, "weur", "all");
    expect(all.members).toHaveLength(3);
    expect(all.sources.filter((s) => s.region !== "weur").map((s) => s.answered)).toEqual([
      true,
      true,
    ]);
    // A member leaving in one region leaves everywhere, cursor included.
    const [gone, ...stay] = clients as [TestClient, ...TestClient[]];
    gone.close();
    await eventually(
      () => stay.every((c) => c.awareness.get(gone.doc.clientID)?.state === null),
      5000,
      "the closed client's cursor to vanish in the other regions",
    );
    for (const region of ["weur", "apac"]) {
      await eventually(
        async () => (await presence(room, region)).members.length === 2,
        5000,
        `${region} to drop the member that left`,
      );
    }
  });

  it("a partition between two regions delays their exchange; after the heal everything converges", async () => {
    const room = "repl-partition";
    const clients = await clientsIn(room);
    open.push(...clients);
    await eventually(() => clients.every((c) => seesEveryone(c, clients)), 5000, "a settled room");
    expect(
      (await admin("PUT", "/v1/admin/faults", { partitions: [["wnam", "weur"]] })).status,
    ).toBe(200);
    // Shards reread the fault plan with the table (cacheMs, 100 ms here).
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [west, europe, asia] = clients as [TestClient, TestClient, TestClient];
    west.doc.getText("t").insert(0, "west-during-cut;");
    europe.doc.getText("t").insert(0, "europe-during-cut;");
    west.setAwareness({ name: "west, moved" }, 2);
    // Asia hears both sides directly all along.
    await eventually(
      () => asia.text.includes("west-during-cut") && asia.text.includes("europe-during-cut"),
      5000,
      "the region on both sides to get both edits",
    );
    await eventually(
      () =>
        (asia.awareness.get(west.doc.clientID)?.state as { name?: string } | undefined)?.name ===
        "west, moved",
      5000,
      "asia to see west's new cursor",
    );
    // Members travel only from their own region, so the cut side keeps the old cursor, even
    // across an anti-entropy period (500 ms here).
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(
      (europe.awareness.get(west.doc.clientID)?.state as { name?: string } | undefined)?.name,
    ).toBe("in wnam");
    expect((await admin("DELETE", "/v1/admin/faults")).status).toBe(200);
    await eventually(
      () =>
        clients.every(
          (c) => c.text.includes("west-during-cut;") && c.text.includes("europe-during-cut;"),
        ) && new Set(clients.map((c) => c.text)).size === 1,
      8000,
      "every region to converge after the heal",
    );
    await eventually(
      () =>
        (europe.awareness.get(west.doc.clientID)?.state as { name?: string } | undefined)?.name ===
        "west, moved",
      8000,
      "the cursor change made during the cut to reach the other side",
    );
  });

  it("a region's shard that restarts loses nothing it persisted: its edit reaches the others after the restart", async () => {
    const room = "repl-restart";
    const clients = await clientsIn(room);
    open.push(...clients);
    await eventually(() => clients.every((c) => seesEveryone(c, clients)), 5000, "a settled room");
    // Cut apac off, so its edit is only in apac's SQLite when its shard restarts.
    expect(
      (
        await admin("PUT", "/v1/admin/faults", {
          partitions: [
            ["apac", "wnam"],
            ["apac", "weur"],
          ],
        })
      ).status,
    ).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the plan reaches the shards
    const asia = clients[2] as TestClient;
    asia.doc.getText("t").insert(0, "only-in-apac;");
    const shard = shardFor(room, "apac", config);
    const stub = env.SHARD.get(env.SHARD.idFromName(shard.name));
    await eventually(
      async () => textOf(await stub.document(room, null)) === "only-in-apac;",
      3000,
      "apac's shard to hold the edit",
    );
    // The restart: the object's memory goes (and its sockets with it); its storage stays.
    await runInDurableObject(stub, (_running: ShardDurableObject, state) => {
      state.abort("restart for the test");
    }).catch(() => undefined);
    expect((await admin("DELETE", "/v1/admin/faults")).status).toBe(200);
    const others = clients.slice(0, 2);
    // A new client in apac wakes its replica again; anti-entropy carries the stored edit.
    const back = await TestClient.connect(room, "?region=apac&user=apac-again");
    open.push(back);
    await eventually(
      () => [...others, back].every((c) => c.text === "only-in-apac;"),
      8000,
      "the edit stored before the restart to reach every region",
    );
  });

  it("a region declared dead loses its members everywhere with region_lost; back, it re-announces them", async () => {
    const room = "repl-region-lost";
    const clients = await clientsIn(room);
    open.push(...clients);
    const [west, , asia] = clients as [TestClient, TestClient, TestClient];
    await eventually(() => clients.every((c) => seesEveryone(c, clients)), 5000, "a settled room");
    west.control({ type: "presence.subscribe" });
    // apac's directory stops (its region is down as far as the others can tell); its shards
    // neither send nor answer.
    expect((await admin("PUT", "/v1/admin/faults", { stopped: ["apac"] })).status).toBe(200);
    await eventually(
      async () =>
        !(await presence(room, "wnam")).members.some((m) => m.region === "apac") &&
        !(await presence(room, "weur")).members.some((m) => m.region === "apac"),
      15_000,
      "apac's member gone from wnam and weur",
    );
    const leaves = west.extension
      .filter((m) => m.type === "presence.events")
      .flatMap(
        (m) => m.events as Array<{ type: string; reason?: string; member?: { region: string } }>,
      )
      .filter((e) => e.type === "member.leave" && e.member?.region === "apac");
    expect(leaves.map((e) => e.reason)).toEqual(["region_lost"]);
    // Stock clients see its cursor removed.
    await eventually(
      () => west.awareness.get(asia.doc.clientID)?.state === null,
      5000,
      "apac's cursor removed for wnam's stock client",
    );
    // Lifted: apac refutes, and its still-connected member is announced again everywhere.
    expect((await admin("DELETE", "/v1/admin/faults")).status).toBe(200);
    await eventually(
      async () => (await presence(room, "wnam")).members.some((m) => m.region === "apac"),
      15_000,
      "apac's member back in wnam",
    );
  });
});
