import { env, evictDurableObject, runDurableObjectAlarm, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { configFromEnv } from "../../src/config/config-schema";
import type { PresenceEvent, PresenceSnapshot } from "../../src/presence/presence-schema";
import { shardFor } from "../../src/routing/shard-router";
import { summary } from "../support/presence-events";
import { eventually, TestClient } from "./client";
import { token } from "./tokens";

const stubOf = (room: string) =>
  env.SHARD.get(env.SHARD.idFromName(shardFor(room, "wnam", configFromEnv(env)).name));

/** Every presence event a subscriber received, in order. */
function eventsOf(client: TestClient): PresenceEvent[] {
  return client.extension.flatMap((m) =>
    m.type === "presence.events" ? (m.events as PresenceEvent[]) : [],
  );
}

async function watcher(room: string): Promise<TestClient> {
  const client = await TestClient.connect(room, "?presence=events&user=watcher");
  await eventually(() => client.extension.length > 0, 2000, "the snapshot");
  return client;
}

async function json<T>(path: string): Promise<T> {
  const response = await SELF.fetch(`http://halo.test${path}`);
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

describe("presence events on the extension channel", () => {
  it("a subscriber gets a snapshot, then join, update and leave events with consecutive sequence numbers", async () => {
    const room = "pe-basic";
    const early = await TestClient.connect(room, "?user=early");
    early.setAwareness({ name: "early" }, 1);
    await eventually(() => early.awareness.size === 1, 2000, "echo");

    const watch = await watcher(room);
    const [first] = watch.extension;
    expect(first?.type).toBe("presence.snapshot");
    const snapshot = (first as unknown as { snapshot: PresenceSnapshot }).snapshot;
    expect(snapshot.members.map((m) => [m.userId, m.state])).toEqual([
      ["early", { name: "early" }],
    ]);
    expect(snapshot.users.map((u) => u.userId)).toEqual(["early"]);

    const ada = await TestClient.connect(room, "?user=ada");
    ada.setAwareness({ cursor: 1 }, 1);
    ada.setAwareness({ cursor: 2 }, 2);
    ada.close();
    await eventually(() => eventsOf(watch).length >= 5, 2000, "ada's events");
    const events = eventsOf(watch);
    expect(summary(events)).toEqual([
      "member.join",
      "user.join",
      "member.update",
      "member.leave:closed",
      "user.leave:closed",
    ]);
    expect(events.map((e) => e.seq - snapshot.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(events[0]).toMatchObject({ member: { userId: "ada", state: { cursor: 1 } } });
    expect(events[2]).toMatchObject({ member: { state: { cursor: 2 } } });
    early.close();
    watch.close();
  });

  it("a null state leaves with `left`, and clients that did not opt in never see an extension frame", async () => {
    const room = "pe-left";
    const watch = await watcher(room);
    const stock = await TestClient.connect(room, "?user=stock");
    stock.setAwareness({ x: 1 }, 1);
    const other = await TestClient.connect(room, "?user=other");
    other.setAwareness({ y: 1 }, 1);
    other.setAwareness(null, 2);
    await eventually(() => eventsOf(watch).length >= 6, 2000, "events");
    expect(summary(eventsOf(watch)).slice(-2)).toEqual(["member.leave:left", "user.leave:left"]);
    expect(stock.extension).toEqual([]);
    expect(stock.frames.every((frame) => frame[0] !== 100)).toBe(true);
    stock.close();
    other.close();
    watch.close();
  });

  it("presence.subscribe and presence.resync on the channel send a snapshot; a bad control message closes 1007", async () => {
    const room = "pe-control";
    const client = await TestClient.connect(room, "?user=late");
    client.setAwareness({ me: 1 }, 1);
    await eventually(() => client.awareness.size === 1, 2000, "echo");
    expect(client.extension).toEqual([]);
    client.control({ type: "presence.subscribe" });
    await eventually(() => client.extension.length === 1, 2000, "the snapshot");
    client.control({ type: "presence.resync" });
    await eventually(() => client.extension.length === 2, 2000, "the second snapshot");
    expect(client.extension.map((m) => m.type)).toEqual(["presence.snapshot", "presence.snapshot"]);
    client.control({ type: "presence.kick", who: "everyone" });
    const closed = await client.closedWith();
    expect(closed.code).toBe(1007);
    expect(closed.reason).toMatch(/not a known control message/);
  });
});

describe("disconnect grace", () => {
  it("a reconnect within the grace gives no leave and no join, only status changes", async () => {
    const room = "pe-reconnect"; // the default 15 s grace
    const watch = await watcher(room);
    const ada = await TestClient.connect(room, "?user=ada");
    ada.setAwareness({ name: "ada" }, 1);
    await eventually(() => eventsOf(watch).length >= 2, 2000, "the join");
    ada.drop();
    await eventually(() => eventsOf(watch).length >= 4, 2000, "the drop");
    // Awareness is not delayed: the watcher's cursor layer dropped ada at once.
    expect(watch.awareness.get(ada.doc.clientID)?.state).toBeNull();
    const back = await TestClient.connect(room, "?user=ada", ada.doc.clientID);
    back.setAwareness({ name: "ada" }, 5);
    await eventually(() => eventsOf(watch).length >= 6, 2000, "the return");
    expect(summary(eventsOf(watch))).toEqual([
      "member.join",
      "user.join",
      "member.status:reconnecting",
      "user.status:reconnecting",
      "member.status:present",
      "user.status:present",
    ]);
    const page = await json<{ members: Array<{ status: string; joinedAt: number }> }>(
      `/v1/rooms/${room}/presence?memberRegion=wnam&userId=ada`,
    );
    expect(page.members).toHaveLength(1);
    expect(page.members[0]?.status).toBe("present");
    back.close();
    watch.close();
  });

  it("after the grace the member leaves with `timeout`, exactly once", async () => {
    const room = "grace-timeout"; // 400 ms grace (vitest.workers.config.ts)
    const watch = await watcher(room);
    const ada = await TestClient.connect(room, "?user=ada");
    ada.setAwareness({ name: "ada" }, 1);
    await eventually(() => eventsOf(watch).length >= 2, 2000, "the join");
    ada.drop();
    await eventually(
      () => summary(eventsOf(watch)).includes("member.leave:timeout"),
      3000,
      "the grace to end (the alarm)",
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(summary(eventsOf(watch))).toEqual([
      "member.join",
      "user.join",
      "member.status:reconnecting",
      "user.status:reconnecting",
      "member.leave:timeout",
      "user.leave:timeout",
    ]);
    watch.close();
  });

  it("a shard that is evicted mid-grace still ends the grace", async () => {
    const room = "grace-evicted";
    const ada = await TestClient.connect(room, "?user=ada");
    ada.setAwareness({ name: "ada" }, 1);
    await eventually(
      async () => (await json<{ total: number }>(`/v1/rooms/${room}/presence`)).total === 1,
      2000,
      "the join",
    );
    ada.drop();
    await eventually(
      async () =>
        (await json<{ members: Array<{ status: string }> }>(`/v1/rooms/${room}/presence`))
          .members[0]?.status === "reconnecting",
      2000,
      "the drop",
    );
    await evictDurableObject(stubOf(room)); // memory gone; the grace lives in SQLite
    await new Promise((resolve) => setTimeout(resolve, 450));
    await runDurableObjectAlarm(stubOf(room));
    const history = await json<{ events: PresenceEvent[] }>(`/v1/rooms/${room}/presence/history`);
    expect(summary(history.events)).toEqual([
      "member.join",
      "user.join",
      "member.status:reconnecting",
      "user.status:reconnecting",
      "member.leave:timeout",
      "user.leave:timeout",
    ]);
    expect((await json<{ total: number }>(`/v1/rooms/${room}/presence`)).total).toBe(0);
  });
});

describe("large rooms", () => {
  it("coalesce state updates: one event per member per window, with its latest state, sent by the alarm", async () => {
    const room = "pe-large"; // more than 3 members is large here (vitest.workers.config.ts)
    const watch = await watcher(room);
    const crowd = await Promise.all(
      ["a", "b", "c", "d"].map((user) => TestClient.connect(room, `?user=${user}`)),
    );
    crowd.forEach((client, i) => {
      client.setAwareness({ v: 0, i }, 1);
    });
    await eventually(() => eventsOf(watch).length >= 8, 2000, "four joins");
    const before = eventsOf(watch).length;
    for (let v = 1; v <= 5; v++) crowd[0]?.setAwareness({ v, i: 0 }, 1 + v);
    await eventually(
      () => eventsOf(watch).some((e) => e.type === "member.update"),
      3000,
      "the coalesced update",
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // nothing more is coming
    const updates = eventsOf(watch).slice(before);
    expect(updates.map((e) => ("member" in e ? [e.type, e.member.state] : [e.type]))).toEqual([
      ["member.update", { v: 5, i: 0 }],
    ]);
    for (const client of crowd) client.close();
    watch.close();
  });
});

describe("users view", () => {
  it("two tabs of one user: one user.join and one user.leave; REST counts one user, two members", async () => {
    const room = "pe-tabs";
    const watch = await watcher(room);
    const tab1 = await TestClient.connect(room, "?user=ada");
    const tab2 = await TestClient.connect(room, "?user=ada");
    tab1.setAwareness({ tab: 1 }, 1);
    tab2.setAwareness({ tab: 2 }, 1);
    await eventually(() => eventsOf(watch).length >= 4, 2000, "both tabs");
    const counts = await json<{ counts: { members: number; users: number } }>(
      `/v1/rooms/${room}/presence?count=1&userId=ada`,
    );
    expect(counts.counts).toEqual({ members: 2, users: 1, reconnecting: 0 });
    const users = await json<{ users: Array<{ userId: string; connections: number }> }>(
      `/v1/rooms/${room}/presence?view=users&userId=ada`,
    );
    expect(users.users).toEqual([
      expect.objectContaining({ userId: "ada", connections: 2, status: "present" }),
    ]);
    tab1.close();
    tab2.close();
    await eventually(() => eventsOf(watch).length >= 8, 2000, "both leaves");
    expect(summary(eventsOf(watch))).toEqual([
      "member.join",
      "user.join",
      "member.join",
      "user.update",
      "member.leave:closed",
      "user.update",
      "member.leave:closed",
      "user.leave:closed",
    ]);
    watch.close();
  });
});

describe("presence REST", () => {
  it("pages members with a cursor, and the history agrees with the events", async () => {
    const room = "pe-rest";
    const watch = await watcher(room);
    const clients = await Promise.all(
      ["u1", "u2", "u3"].map((user) => TestClient.connect(room, `?user=${user}`)),
    );
    clients.forEach((client, i) => {
      client.setAwareness({ i }, 1);
    });
    await eventually(() => eventsOf(watch).length >= 6, 2000, "three joins");
    type Page = { version: number; members: Array<{ userId: string }>; nextCursor?: string };
    const first = await json<Page>(`/v1/rooms/${room}/presence?limit=2`);
    expect(first.members).toHaveLength(2);
    expect(first.nextCursor).toBeDefined();
    const second = await json<Page>(
      `/v1/rooms/${room}/presence?limit=2&cursor=${first.nextCursor}`,
    );
    expect(second.members).toHaveLength(1);
    expect(second.nextCursor).toBeUndefined();
    expect([...first.members, ...second.members].map((m) => m.userId).sort()).toEqual([
      "u1",
      "u2",
      "u3",
    ]);
    const events = eventsOf(watch);
    expect(first.version).toBe(events.at(-1)?.seq);
    const history = await json<{ events: PresenceEvent[] }>(
      `/v1/rooms/${room}/presence/history?since=${events[0]?.seq === undefined ? 0 : events[0].seq - 1}`,
    );
    expect(history.events.map((e) => [e.seq, e.type])).toEqual(events.map((e) => [e.seq, e.type]));
    for (const client of clients) client.close();
    watch.close();
  });

  it("answers for many rooms in one call: counts, or members; a room the token may not read gets its own error", async () => {
    const a = await TestClient.connect("pq-one", "?user=ada");
    const b = await TestClient.connect("pq-two", "?user=bob");
    a.setAwareness({ a: 1 }, 1);
    b.setAwareness({ b: 1 }, 1);
    await eventually(() => a.awareness.size === 1 && b.awareness.size === 1, 2000, "echoes");
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      SELF.fetch("http://halo.test/v1/presence/query", {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    const counts = await post({ rooms: ["pq-one", "pq-two", "pq-empty"] });
    expect(counts.status).toBe(200);
    const countBody = (await counts.json()) as {
      results: Record<string, { counts: { members: number; users: number } }>;
    };
    expect(Object.keys(countBody.results)).toEqual(["pq-one", "pq-two", "pq-empty"]);
    expect(countBody.results["pq-one"]?.counts).toEqual({ members: 1, users: 1, reconnecting: 0 });
    expect(countBody.results["pq-empty"]?.counts).toEqual({
      members: 0,
      users: 0,
      reconnecting: 0,
    });

    const members = await post({ rooms: ["pq-one", "pq-two"], view: "members", userId: "bob" });
    const memberBody = (await members.json()) as {
      results: Record<string, { members: Array<{ userId: string }> }>;
    };
    expect(memberBody.results["pq-one"]?.members).toEqual([]);
    expect(memberBody.results["pq-two"]?.members.map((m) => m.userId)).toEqual(["bob"]);

    const bearer = `Bearer ${await token("rita", { "pq-one": ["read"] })}`;
    const mixed = await post({ rooms: ["pq-one", "pq-two"] }, { authorization: bearer });
    const mixedBody = (await mixed.json()) as {
      results: Record<string, { counts?: unknown; error?: { code: string } }>;
    };
    expect(mixedBody.results["pq-one"]?.counts).toBeDefined();
    expect(mixedBody.results["pq-two"]?.error?.code).toBe("forbidden");

    const bad = await post({ rooms: ["ok", "no spaces"] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { field: string } }).error.field).toBe("rooms.1");
    const tooMany = await post({ rooms: Array.from({ length: 101 }, (_, i) => `r${i}`) });
    expect(tooMany.status).toBe(400);
    a.close();
    b.close();
  });

  it("rejects bad query parameters with a 400 naming the field", async () => {
    for (const [query, field] of [
      ["view=everyone", "view"],
      ["limit=0", "limit"],
      ["cursor=not-a-cursor", "cursor"],
      ["status=gone", "status"],
    ] as const) {
      const response = await SELF.fetch(`http://halo.test/v1/rooms/pe-bad/presence?${query}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { field: string } }).error.field).toBe(field);
    }
    const history = await SELF.fetch("http://halo.test/v1/rooms/pe-bad/presence/history?since=x");
    expect(history.status).toBe(400);
    const upgrade = await SELF.fetch("http://halo.test/v1/rooms/pe-bad?presence=everything", {
      headers: {
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
      },
    });
    expect(upgrade.status).toBe(400);
    expect(((await upgrade.json()) as { error: { field: string } }).error.field).toBe("presence");
  });
});
