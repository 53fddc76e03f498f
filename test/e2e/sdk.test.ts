import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import * as Y from "yjs";
import {
  connect,
  type HaloClient,
  HaloRequestError,
  type LeaveReason,
  type Room,
  type WebSocketConstructor,
} from "../../src/client/index";
import { type DevServer, startWranglerDev } from "../support/wrangler-dev";

/**
 * The SDK (`halo/client`) in Node against `wrangler dev`: the real Worker, shards in three
 * regions, real sockets. Each client's sockets are recorded so a test can cut one the way a
 * network does (no close frame).
 */
const SECRET = "e2e-sdk-secret-not-for-production";
let server: DevServer;
const clients: HaloClient[] = [];

beforeAll(async () => {
  server = await startWranglerDev(undefined, { HALO_TOKEN_SECRET: SECRET });
});

afterAll(async () => {
  for (const client of clients) client.close();
  await server?.stop();
});

/** `ws`, recording every socket the SDK opens. */
function recordingWebSocket(sockets: WebSocket[]): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  } as unknown as WebSocketConstructor;
}

function client(options: { user?: string; region?: string; getToken?: () => Promise<string> }) {
  const sockets: WebSocket[] = [];
  const created = connect({
    url: server.httpUrl,
    WebSocket: recordingWebSocket(sockets),
    backoff: { initialMs: 100, maxMs: 1_000 },
    ...options,
  });
  clients.push(created);
  return { client: created, sockets };
}

async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function record(room: Room): string[] {
  const seen: string[] = [];
  room.presence.on("join", (m) => seen.push(`join:${m.userId}`));
  room.presence.on("update", (m) => seen.push(`update:${m.userId}`));
  room.presence.on("status", (m) => seen.push(`status:${m.userId}:${m.status}`));
  room.presence.on("leave", (m, reason: LeaveReason) => seen.push(`leave:${m.userId}:${reason}`));
  return seen;
}

describe("SDK against wrangler dev", () => {
  it("presence API across regions: enter, update, members with region, users, leave", async () => {
    const ada = client({ user: "ada", region: "wnam" }).client.room("sdk-presence", {
      presence: { color: "red" },
    });
    const grace = client({ user: "grace", region: "apac" }).client.room("sdk-presence");
    const seen = record(grace);
    await until(() => grace.presence.members().some((m) => m.userId === "ada"), "ada in apac");
    const adaSeen = grace.presence.members().find((m) => m.userId === "ada");
    expect(adaSeen?.region).toBe("wnam");
    expect(adaSeen?.state).toEqual({ color: "red" });

    ada.presence.update({ cursor: { x: 0.5, y: 0.25 } });
    await until(() => seen.includes("update:ada"), "ada's update");
    expect(grace.presence.members()[0]?.state).toEqual({
      color: "red",
      cursor: { x: 0.5, y: 0.25 },
    });

    grace.presence.enter({ color: "blue" });
    await until(() => ada.presence.others().some((m) => m.userId === "grace"), "grace in wnam");
    expect(ada.presence.others()[0]?.region).toBe("apac");
    expect(
      ada.presence
        .users()
        .map((u) => u.userId)
        .sort(),
    ).toEqual(["ada", "grace"]);

    ada.destroy();
    await until(() => seen.includes("leave:ada:left"), "ada's leave");
    expect(grace.presence.others()).toEqual([]);
  });

  it("a socket cut without a close frame reconnects with no leave and no join, and its offline edits arrive", async () => {
    const docA = new Y.Doc();
    const docB = new Y.Doc();
    const a = client({ user: "ada", region: "weur" });
    const adaRoom = a.client.room("sdk-reconnect", { doc: docA, presence: { n: 1 } });
    const watcher = client({ user: "grace", region: "weur" }).client.room("sdk-reconnect", {
      doc: docB,
    });
    const seen = record(watcher);
    await until(() => adaRoom.synced && watcher.synced, "both synced");
    await until(() => seen.includes("join:ada"), "ada's join");
    const statuses: string[] = [];
    adaRoom.on("status", (s) => statuses.push(s));

    a.sockets[0]?.terminate(); // the TCP connection goes: the shard sees an unclean close
    docA.getText("t").insert(0, "typed while cut off");
    await until(() => statuses.includes("connected"), "ada reconnected");
    await until(() => docB.getText("t").toString() === "typed while cut off", "the offline edit");
    await until(
      () => watcher.presence.members().find((m) => m.userId === "ada")?.status === "present",
      "ada present again",
    );
    expect(statuses).toEqual(["reconnecting", "connected"]);
    expect(a.sockets).toHaveLength(2);
    const flaps = seen.filter((e) => e.startsWith("leave:ada") || e === "join:ada");
    expect(flaps).toEqual(["join:ada"]); // only the first join: the cut was no leave
    expect(watcher.awareness.getStates().get(adaRoom.awareness.clientID)).toEqual({ n: 1 });
  });

  it("edits made while disconnected by the app are sent on connect()", async () => {
    const docA = new Y.Doc();
    const docB = new Y.Doc();
    const a = client({ user: "ada", region: "wnam" }).client.room("sdk-offline", { doc: docA });
    const b = client({ user: "grace", region: "apac" }).client.room("sdk-offline", { doc: docB });
    await until(() => a.synced && b.synced, "both synced");
    a.disconnect();
    docA.getText("t").insert(0, "offline ");
    docB.getText("t").insert(0, "online");
    await new Promise((r) => setTimeout(r, 300));
    expect(docA.getText("t").toString()).toBe("offline ");
    a.connect();
    await until(
      () =>
        docA.getText("t").toString() === docB.getText("t").toString() &&
        docA.getText("t").length === "offline online".length,
      "convergence across regions",
    );
  });

  it("refreshes a short-lived token in-band before it expires: same socket, no presence change", async () => {
    let minted = 0;
    const getToken = async () => {
      minted++;
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ cap: { "sdk-token": ["read", "write", "presence"] } })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject("ada")
        .setExpirationTime(now + 3)
        .sign(new TextEncoder().encode(SECRET));
    };
    const a = client({ getToken, region: "wnam" });
    const room = a.client.room("sdk-token", { presence: { n: 1 } });
    const watcher = client({ user: "grace", region: "wnam" }).client.room("sdk-token");
    const seen = record(watcher);
    await until(() => seen.includes("join:ada"), "ada's join");
    await new Promise((r) => setTimeout(r, 7_000)); // past two lifetimes of the first token
    expect(minted).toBeGreaterThanOrEqual(3);
    expect(a.sockets).toHaveLength(1); // refreshed on the open socket, never reconnected
    expect(room.status).toBe("connected");
    expect(seen).toEqual(["join:ada"]);
    room.presence.update({ n: 2 });
    await until(() => seen.includes("update:ada"), "an update after the refreshes");
  });

  it("a handshake refused for good stops the room with the server's reason, asked over REST", async () => {
    const bad = connect({
      url: server.httpUrl,
      token: "not-a-jwt",
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    clients.push(bad);
    const room = bad.room("sdk-refused");
    const errors: Error[] = [];
    room.on("error", (e) => errors.push(e));
    await until(() => room.status === "disconnected", "the room to stop");
    const error = errors.find((e): e is HaloRequestError => e instanceof HaloRequestError);
    expect(error?.status).toBe(401);
    expect(error?.code).toBe("invalid_token");
  });

  it("REST through the SDK: counts, filters and the server's error fields", async () => {
    const { client: rest } = client({ user: "ada", region: "wnam" });
    const room = rest.room("sdk-rest", { presence: { n: 1 } });
    await until(() => room.presence.me() !== null, "ada's member");
    const counts = await rest.fetchPresence("sdk-rest", { count: true });
    expect(counts).toMatchObject({ counts: { members: 1, users: 1 } });
    const mine = await rest.fetchPresence("sdk-rest", { userId: "ada", limit: 5 });
    expect(mine).toMatchObject({ view: "members", total: 1 });
    const failure = await rest.fetchPresence("sdk-rest", { limit: 0 }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(HaloRequestError);
    expect((failure as HaloRequestError).field).toBe("limit");
  });
});
