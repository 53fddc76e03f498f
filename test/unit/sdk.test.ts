import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Awareness } from "y-protocols/awareness";
import * as Y from "yjs";
import { backoffDelay } from "../../src/client/backoff";
import { systemClock } from "../../src/client/client-clock";
import { connect, type HaloClient, HaloRequestError, type Room } from "../../src/client/index";
import { RoomSync } from "../../src/client/room-sync";
import type { LeaveReason } from "../../src/presence/presence-schema";
import { decodeAwarenessUpdate } from "../../src/protocol/awareness-codec";
import { PING_FRAME } from "../../src/protocol/liveness";
import { TEST_ROOM_LIMITS } from "./room-limits";
import { type HubSocket, SocketHub } from "./sdk-hub";
import { awarenessPayloadOf, rawAwarenessFrame } from "./stock-client";

/**
 * The SDK's real classes (client, room, connection, sync, presence) against the real room core
 * behind an in-process socket hub, on virtual time: the lifecycle properties the issue asks
 * for, without waiting on real time. The same behaviours run against `wrangler dev` in
 * test/e2e/sdk.test.ts.
 */
let hub: SocketHub;
const clients: HaloClient[] = [];

beforeEach(() => {
  restAnswer = () => {
    throw new TypeError("fetch failed");
  };
  vi.useFakeTimers({ now: 1_700_000_000_000 });
  hub = new SocketHub();
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  hub.destroy();
  vi.useRealTimers();
});

/** A seeded draw, so backoff waits are known in advance. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** REST as the hub's tests see it: unreachable, unless a test answers. */
let restAnswer: () => Response = () => {
  throw new TypeError("fetch failed");
};

function client(user: string, options: { random?: () => number; getToken?: () => string } = {}) {
  const created = connect({
    fetch: async () => restAnswer(),
    url: "http://halo.test",
    user,
    WebSocket: hub.WebSocket,
    clock: { ...systemClock, random: options.random ?? seeded(user.length) },
    backoff: { initialMs: 100, maxMs: 2_000 },
    pingIntervalMs: 10_000,
    pongTimeoutMs: 2_000,
    ...(options.getToken ? { getToken: options.getToken } : {}),
  });
  clients.push(created);
  return created;
}

const run = (ms: number) => vi.advanceTimersByTimeAsync(ms);

/** Every presence event a room reports, as short strings. */
function record(room: Room): string[] {
  const seen: string[] = [];
  const name = (m: { userId: string }) => m.userId;
  room.presence.on("join", (m) => seen.push(`join:${name(m)}`));
  room.presence.on("update", (m) => seen.push(`update:${name(m)}`));
  room.presence.on("status", (m) => seen.push(`status:${name(m)}:${m.status}`));
  room.presence.on("leave", (m, reason: LeaveReason) => seen.push(`leave:${name(m)}:${reason}`));
  return seen;
}

function socketsOf(room: string): HubSocket[] {
  return hub.sockets.filter((s) => s.room === room);
}

describe("SDK presence API against the room core", () => {
  it("enter, update and leave reach the others as join, update and leave with the server's identity", async () => {
    const ada = client("ada").room("r", { presence: { color: "red" } });
    const grace = client("grace").room("r");
    const seen = record(grace);
    await run(50);
    expect(ada.status).toBe("connected");
    expect(grace.presence.ready).toBe(true);
    expect(grace.presence.members().map((m) => [m.userId, m.state])).toEqual([
      ["ada", { color: "red" }],
    ]);
    expect(grace.presence.me()).toBeNull(); // a room without doc or presence only watches

    ada.presence.update({ cursor: { x: 1, y: 2 } });
    await run(20);
    expect(grace.presence.members()[0]?.state).toEqual({ color: "red", cursor: { x: 1, y: 2 } });
    expect(ada.presence.me()?.userId).toBe("ada");
    expect(ada.presence.others()).toEqual([]);

    grace.presence.enter({ color: "blue" });
    await run(20);
    expect(ada.presence.others().map((m) => m.userId)).toEqual(["grace"]);
    expect(ada.presence.users().map((u) => u.userId)).toEqual(["ada", "grace"]);

    ada.presence.leave();
    await run(20);
    // Grace sees herself join too, with the identity the server gave her.
    expect(seen).toEqual(["join:ada", "update:ada", "join:grace", "leave:ada:left"]);
    expect(grace.presence.others()).toEqual([]);
    expect(ada.status).toBe("connected"); // left presence, still subscribed
    expect(ada.presence.members().map((m) => m.userId)).toEqual(["grace"]);
  });

  it("says when the first snapshot arrived, even for an empty room", async () => {
    const watcher = client("grace").room("empty");
    const ready: number[] = [];
    watcher.presence.on("ready", (members) => ready.push(members.length));
    expect(watcher.presence.ready).toBe(false);
    await run(50);
    expect(ready).toEqual([0]);
    expect(watcher.presence.ready).toBe(true);
  });

  it("destroy() leaves at once for the others, with reason left", async () => {
    const ada = client("ada").room("r", { presence: {} });
    const grace = client("grace").room("r");
    const seen = record(grace);
    await run(50);
    ada.destroy();
    await run(20);
    expect(seen).toEqual(["join:ada", "leave:ada:left"]);
    expect(ada.status).toBe("disconnected");
  });
});

describe("SDK documents", () => {
  it("keeps edits made offline and sends them on reconnect; both sides converge", async () => {
    const docA = new Y.Doc();
    const docB = new Y.Doc();
    const a = client("ada").room("doc", { doc: docA });
    const b = client("grace").room("doc", { doc: docB });
    await run(50);
    expect(a.synced && b.synced).toBe(true);
    docA.getText("t").insert(0, "hello");
    await run(20);
    expect(docB.getText("t").toString()).toBe("hello");

    b.disconnect();
    await run(20);
    expect(b.status).toBe("disconnected");
    docB.getText("t").insert(5, " from b offline");
    docA.getText("t").insert(0, ">> ");
    await run(200);
    expect(docA.getText("t").toString()).toBe(">> hello");

    b.connect();
    await run(50);
    expect(b.synced).toBe(true);
    expect(docA.getText("t").toString()).toBe(">> hello from b offline");
    expect(docB.getText("t").toString()).toBe(docA.getText("t").toString());
  });
});

describe("SDK reconnection", () => {
  it("a dropped socket reconnects within the grace: others see a status change, never a leave or a join", async () => {
    const ada = client("ada").room("r", { presence: { n: 1 } });
    const grace = client("grace").room("r", { presence: { n: 2 } });
    const seenByGrace = record(grace);
    const seenByAda = record(ada);
    await run(50);
    const statuses: string[] = [];
    ada.on("status", (s) => statuses.push(s));

    hub.drop(socketsOf("r")[0] as HubSocket); // ada's socket
    await run(5_000);
    expect(statuses).toEqual(["reconnecting", "connected"]);
    expect(
      ada.presence
        .members()
        .map((m) => `${m.userId}:${m.status}`)
        .sort(),
    ).toEqual(["ada:present", "grace:present"]);
    expect(seenByGrace.filter((e) => e.startsWith("join") || e.startsWith("leave"))).toEqual([
      "join:ada",
      "join:grace",
    ]);
    expect(seenByGrace).toContain("status:ada:reconnecting");
    expect(seenByGrace.at(-1)).toBe("status:ada:present");
    // Ada's own view came back by a snapshot applied as a difference: nobody left or joined.
    expect(seenByAda.filter((e) => e.startsWith("leave"))).toEqual([]);
    expect(seenByAda.filter((e) => e.startsWith("join"))).toEqual(["join:ada", "join:grace"]);
    // Her cursor state was re-announced with a bumped clock, so Grace has it again.
    expect(grace.awareness.getStates().get(ada.awareness.clientID)).toEqual({ n: 1 });
  });

  it("retries an unreachable server with full-jitter backoff, and starts afresh after a sync", async () => {
    hub.refuse = true;
    const random = seeded(42);
    const expected = seeded(42);
    const room = client("ada", { random }).room("r", { doc: new Y.Doc() });
    await run(60_000);
    expect(room.status).toBe("connecting");
    const attemptsAt = socketsOf("r").map((s) => s.createdAt);
    expect(attemptsAt.length).toBeGreaterThan(30);
    // Attempt n+1 starts one hop after attempt n failed, plus its jittered wait.
    const gaps = attemptsAt.slice(1).map((at, i) => at - (attemptsAt[i] as number));
    const waits = gaps.map((_, i) => backoffDelay(i, expected(), { initialMs: 100, maxMs: 2_000 }));
    expect(gaps).toEqual(waits.map((wait) => wait + 1));
    expect(Math.max(...gaps)).toBeLessThanOrEqual(2_001);
    expect(new Set(gaps.slice(5)).size).toBeGreaterThan(3); // jittered, not one fixed ceiling

    hub.refuse = false;
    await run(2_100);
    expect(room.status).toBe("connected");
    expect(room.synced).toBe(true);
    const before = socketsOf("r").length;
    hub.drop(socketsOf("r").at(-1) as HubSocket);
    await run(150); // the first wait after a sync is under initialMs again
    expect(socketsOf("r").length).toBe(before + 1);
  });

  it("asks REST why after two refused handshakes: a refusal for good stops the room with its reason", async () => {
    hub.refuse = true;
    const room = client("ada").room("r", { presence: {} });
    const errors: unknown[] = [];
    room.on("error", (e) => errors.push(e));
    await run(5_000); // unreachable REST: it keeps trying
    expect(room.status).toBe("connecting");
    expect(errors).toEqual([]);
    restAnswer = () =>
      Response.json(
        { error: { code: "forbidden", message: "no read right in room r", field: "token" } },
        { status: 403 },
      );
    await run(5_000);
    expect(room.status).toBe("disconnected");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(HaloRequestError);
    expect(errors[0]).toMatchObject({ status: 403, code: "forbidden", field: "token" });
    const attempts = socketsOf("r").length;
    await run(60_000);
    expect(socketsOf("r")).toHaveLength(attempts); // stopped for good
  });

  it("a socket gone silent is noticed by an unanswered ping, and replaced", async () => {
    const room = client("ada").room("r", { presence: {} });
    await run(50);
    const first = socketsOf("r")[0] as HubSocket;
    await run(10_100);
    expect(first.sent.filter((f) => f === PING_FRAME)).toHaveLength(1); // silent 10 s: one ping
    hub.silence(first);
    await run(10_000 + 2_000 + 500);
    expect(socketsOf("r").length).toBe(2);
    expect(room.status).toBe("connected");
  });
});

describe("SDK when nothing changes", () => {
  it("sends nothing that would wake a hibernating shard: no awareness renewal, only pings the platform answers", async () => {
    const room = client("ada").room("quiet", { doc: new Y.Doc(), presence: { name: "Ada" } });
    await run(50);
    const socket = socketsOf("quiet")[0] as HubSocket;
    const sentAtStart = socket.sent.length;
    await run(5 * 60_000); // y-protocols would renew the awareness entry 20 times here
    const later = socket.sent.slice(sentAtStart);
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((frame) => frame === PING_FRAME)).toBe(true);
    expect(room.status).toBe("connected");
    expect(socketsOf("quiet")).toHaveLength(1); // and the quiet socket was never dropped
  });

  it("leaves no y-protocols renewal timer running (lib0 reads the real clock, so count timers)", () => {
    const before = vi.getTimerCount();
    const room = client("ada").room("idle", { doc: new Y.Doc(), presence: {}, connect: false });
    expect(vi.getTimerCount()).toBe(before);
    expect(room.status).toBe("disconnected");
  });
});

describe("SDK closes it cannot recover from", () => {
  it("a policy close without getToken stops with an error; with getToken it fetches a new token and reconnects", async () => {
    const errors: string[] = [];
    const fixed = client("ada").room("r", { presence: {} });
    fixed.on("error", (e) => errors.push(e.message));
    await run(50);
    const room = hub.room("r");
    // The server closes it as for an expired token.
    (socketsOf("r")[0] as HubSocket).onclose?.({ code: 1008, reason: "token expired" });
    await run(50);
    expect(fixed.status).toBe("disconnected");
    expect(errors.join()).toMatch(/fresh token/);

    let issued = 0;
    const refreshing = client("grace", { getToken: () => `token-${++issued}` }).room("r2", {
      presence: {},
    });
    await run(50);
    expect(issued).toBe(1);
    expect(socketsOf("r2")[0]?.params.get("token")).toBe("token-1");
    (socketsOf("r2")[0] as HubSocket).onclose?.({ code: 1008, reason: "token expired" });
    await run(500);
    expect(issued).toBe(2);
    expect(socketsOf("r2")[1]?.params.get("token")).toBe("token-2");
    expect(refreshing.status).toBe("connected");
    expect(room.members()).toHaveLength(1);
  });
});

describe("RoomSync", () => {
  it("answers the server removing its own live entry with a higher clock", () => {
    const doc = new Y.Doc();
    const awareness = new Awareness(doc);
    const sent: Uint8Array[] = [];
    const sync = new RoomSync(null, awareness, (frame) => sent.push(frame));
    awareness.setLocalState({ name: "Ada" });
    sync.opened();
    const clock = awareness.meta.get(doc.clientID)?.clock ?? -1;
    sent.length = 0;
    // The server's `null` at clock + 1 for this client (as after a stale socket of it closed).
    sync.receive(rawAwarenessFrame([{ clientId: doc.clientID, clock: clock + 1, state: "null" }]));
    expect(awareness.getLocalState()).toEqual({ name: "Ada" });
    expect(sent).toHaveLength(1);
    const entries = decodeAwarenessUpdate(
      awarenessPayloadOf(sent[0] as Uint8Array),
      TEST_ROOM_LIMITS,
    );
    expect(entries).toEqual([{ clientId: doc.clientID, clock: clock + 2, json: '{"name":"Ada"}' }]);
    sync.destroy();
    awareness.destroy();
  });
});

describe("SDK argument checks", () => {
  it("refuses, before any socket, a user id or a room name the server would refuse at the handshake", async () => {
    const { roomNameSchema } = await import("../../src/http/room-name");
    expect(() =>
      connect({ url: "http://halo.test", user: "Brave Otter", WebSocket: hub.WebSocket }),
    ).toThrow(/user may contain only/);
    expect(() => connect({ url: "ftp://halo.test", WebSocket: hub.WebSocket })).toThrow(
      /http\(s\) or ws\(s\)/,
    );
    const ok = client("ada");
    for (const name of ["a b", "", ".", "..", "x".repeat(129), "été", "a/b"]) {
      expect(() => ok.room(name)).toThrow(TypeError);
      expect(roomNameSchema.safeParse(name).success).toBe(false); // the same rule as the server's
    }
    for (const name of ["team:doc-42", "a.b_c~d", "x".repeat(128)]) {
      expect(roomNameSchema.safeParse(name).success).toBe(true);
      expect(ok.room(name).name).toBe(name);
    }
    expect(hub.sockets).toHaveLength(0); // nothing was opened for the refused ones (nor yet the rest)
  });
});
