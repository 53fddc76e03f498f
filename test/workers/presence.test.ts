import { env, evictDurableObject, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { configFromEnv } from "../../src/config/config-schema";
import { shardFor } from "../../src/routing/shard-router";
import { eventually, TestClient } from "./client";

const stubOf = (room: string) =>
  env.SHARD.get(env.SHARD.idFromName(shardFor(room, "wnam", configFromEnv(env)).name));

describe("presence", () => {
  it("relays awareness to everyone, including the sender, and removes a closed client at clock + 1 or above", async () => {
    const a = await TestClient.connect("presence-basic");
    const b = await TestClient.connect("presence-basic");
    a.setAwareness({ name: "a" }, 1);
    b.setAwareness({ name: "b" }, 1);
    await eventually(
      () => a.awareness.size === 2 && b.awareness.size === 2,
      2000,
      "both states everywhere",
    );
    const clockOfA = b.awareness.get(a.doc.clientID)?.clock ?? 0;
    a.close();
    await eventually(() => b.awareness.get(a.doc.clientID)?.state === null, 2000, "a's removal");
    // The reference server sends exactly clock + 1; with several regions configured, relay
    // clocks also follow time (awareness-table.ts, `advance`), so it may be further ahead.
    expect(b.awareness.get(a.doc.clientID)?.clock).toBeGreaterThanOrEqual(clockOfA + 1);
    b.close();
  });

  it("drops entries for clientIDs a connection does not own", async () => {
    const a = await TestClient.connect("presence-spoof");
    const b = await TestClient.connect("presence-spoof");
    a.setAwareness({ name: "a" }, 1);
    b.setAwareness({ name: "b" }, 1);
    await eventually(() => a.awareness.size === 2, 2000, "both states");
    // b tries to overwrite and then remove a's entry, with clocks far ahead.
    b.setAwareness({ name: "forged" }, 50, a.doc.clientID);
    b.setAwareness(null, 51, a.doc.clientID);
    b.setAwareness({ name: "b2" }, 2); // a frame after the forgeries, to know they were processed
    await eventually(
      () => (a.awareness.get(b.doc.clientID)?.state as { name?: string })?.name === "b2",
      2000,
      "b2",
    );
    expect(a.awareness.get(a.doc.clientID)?.state).toEqual({ name: "a" });
    const members = await runInDurableObject(stubOf("presence-spoof"), (instance) =>
      instance.members("presence-spoof"),
    );
    expect(
      members
        .map((m) => m.state)
        .sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
    ).toEqual([{ name: "a" }, { name: "b2" }]);
    a.close();
    b.close();
  });

  it("rebuilds presence from socket attachments after hibernation", async () => {
    const room = "presence-hibernate";
    const a = await TestClient.connect(room);
    const b = await TestClient.connect(room);
    a.setAwareness({ name: "a" }, 3);
    b.setAwareness({ name: "b" }, 7);
    a.doc.getText("t").insert(0, "before sleep");
    await eventually(
      () => b.text === "before sleep" && b.awareness.size === 2,
      2000,
      "initial sync",
    );

    const stub = stubOf(room);
    await evictDurableObject(stub); // hibernates: sockets stay open, memory is gone

    // A newcomer gets both states from the rebuilt table, without a or b re-sending anything.
    const c = await TestClient.connect(room);
    await eventually(
      () => c.awareness.size === 2 && c.text === "before sleep",
      2000,
      "state after wake",
    );
    expect(c.awareness.get(a.doc.clientID)?.state).toEqual({ name: "a" });
    expect(c.awareness.get(b.doc.clientID)?.state).toEqual({ name: "b" });

    // Ownership survived too: a's next update is relayed, a's close removes only a.
    a.setAwareness({ name: "a, awake" }, 4);
    await eventually(
      () => (b.awareness.get(a.doc.clientID)?.state as { name?: string })?.name === "a, awake",
      2000,
      "a's update",
    );
    a.close();
    await eventually(
      () => c.awareness.get(a.doc.clientID)?.state === null,
      2000,
      "a's removal after wake",
    );
    expect(c.awareness.get(b.doc.clientID)?.state).toEqual({ name: "b" });
    b.close();
    c.close();
  });

  it("relays a returning client above the removal its peers hold, after hibernation lost the entry", async () => {
    const room = "presence-return";
    const a = await TestClient.connect(room);
    const b = await TestClient.connect(room);
    const alice = a.doc.clientID;
    a.setAwareness({ name: "alice" }, 1);
    await eventually(() => b.awareness.get(alice)?.state !== undefined, 2000, "alice's state");
    a.close();
    await eventually(() => b.awareness.get(alice)?.state === null, 2000, "alice's removal");
    const removalClock = b.awareness.get(alice)?.clock ?? Number.POSITIVE_INFINITY;

    await evictDurableObject(stubOf(room)); // b's socket hibernates; alice's released entry is forgotten
    // A real wake-up comes seconds later; relay clocks only need the reload in a later millisecond.
    await new Promise((resolve) => setTimeout(resolve, 5));

    // Alice comes back with the clock she had (a stock client keeps its own clock).
    const back = await TestClient.connect(room);
    back.setAwareness({ name: "alice again" }, 1, alice);
    await eventually(
      () => (b.awareness.get(alice)?.state as { name?: string } | null)?.name === "alice again",
      2000,
      "alice's return",
    );
    // A stock client accepts only a clock above the one it holds.
    expect(b.awareness.get(alice)?.clock).toBeGreaterThan(removalClock);
    b.close();
    back.close();
  });

  it("answers queryAwareness with every present state", async () => {
    const a = await TestClient.connect("presence-query");
    a.setAwareness({ cursor: 4 }, 1);
    const b = await TestClient.connect("presence-query");
    await eventually(() => b.awareness.has(a.doc.clientID), 2000, "initial awareness");
    b.awareness.clear();
    b.send(new Uint8Array([3]));
    await eventually(() => b.awareness.get(a.doc.clientID) !== undefined, 2000, "query answer");
    expect(b.awareness.get(a.doc.clientID)?.state).toEqual({ cursor: 4 });
    a.close();
    b.close();
  });
});

describe("presence REST", () => {
  it("lists members with their server-side identity", async () => {
    const a = await TestClient.connect("presence-rest");
    a.setAwareness({ name: "ada" }, 1);
    await eventually(() => a.awareness.size === 1, 2000, "echo");
    const response = await SELF.fetch("http://halo.test/v1/rooms/presence-rest/presence");
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      total: number;
      members: Array<Record<string, unknown>>;
    };
    expect(body.total).toBe(1);
    expect(body.members[0]).toMatchObject({
      clientId: a.doc.clientID,
      state: { name: "ada" },
      region: "wnam",
    });
    expect(typeof body.members[0]?.connectionId).toBe("string");
    expect(typeof body.members[0]?.joinedAt).toBe("number");
    a.close();
  });
});
