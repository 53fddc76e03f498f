import { createExecutionContext, env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/worker";
import { awarenessFrame, documentOf, eventually, TestClient, textOf } from "./client";
import { token } from "./tokens";

// The limits vitest.workers.config.ts configures for these tests.
const MAX_CONNECTIONS_PER_ROOM = 8;
const MESSAGE_BURST = 100;

const QUERY_AWARENESS = new Uint8Array([3]);

type ErrorJson = {
  error: { code: string; message: string; field?: string; limit?: { name: string; value: number } };
};

async function summaryOf(room: string): Promise<{ connections: number }> {
  const response = await SELF.fetch(`http://halo.test/v1/rooms/${room}`);
  return (await response.json()) as { connections: number };
}

/**
 * Configuration of its own for one test: the Worker keeps its parsed configuration and its
 * limiters per env object, so each call to this makes a fresh Worker state.
 */
function envWith(overrides: Record<string, unknown>) {
  return { ...env, ...overrides };
}

async function callWith(
  testEnv: ReturnType<typeof envWith>,
  path: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  const request = new Request(`http://halo.test${path}`, { headers });
  return worker.fetch(request, testEnv, createExecutionContext());
}

describe("per-connection and per-room limits on the WebSocket", () => {
  it("maxConnectionsPerRoom: the connection one over the limit is closed with 1013; the others keep working", async () => {
    const room = "limit-connections";
    const admitted = await Promise.all(
      Array.from({ length: MAX_CONNECTIONS_PER_ROOM }, () => TestClient.connect(room)),
    );
    const refused = await TestClient.connect(room);
    expect(await refused.closedWith()).toEqual({
      code: 1013,
      reason: `room full: ${MAX_CONNECTIONS_PER_ROOM} connections (limits.maxConnectionsPerRoom); try again later`,
    });
    admitted[0]?.doc.getText("t").insert(0, "still here");
    await eventually(
      () => admitted.every((c) => c.text === "still here" && c.closeEvent === null),
      3000,
      "the admitted clients to keep syncing",
    );
    // A place freed is a place taken.
    admitted[1]?.close();
    await eventually(
      async () => (await summaryOf(room)).connections === MAX_CONNECTIONS_PER_ROOM - 1,
      2000,
      "the shard to see the close",
    );
    const next = await TestClient.connect(room);
    await eventually(() => next.text === "still here", 3000, "the newcomer to sync");
    for (const client of [...admitted, next]) client.close();
  });

  it("messagesPerSecond: a flood beyond the burst closes the sender with 1008; the room is untouched", async () => {
    const room = "limit-rate";
    const calm = await TestClient.connect(room);
    calm.setAwareness({ name: "calm" }, 1);
    calm.doc.getText("t").insert(0, "calm");
    const flooder = await TestClient.connect(room);
    await eventually(() => flooder.text === "calm", 2000, "the flooder to sync");
    for (let i = 0; i < MESSAGE_BURST * 2; i++) flooder.send(QUERY_AWARENESS);
    expect(await flooder.closedWith()).toEqual({
      code: 1008,
      reason:
        "rate limit: over 50 messages/s (limits.messagesPerSecond), burst 100 (limits.messageBurst)",
    });
    calm.doc.getText("t").insert(4, " and well");
    await eventually(
      async () => textOf(await documentOf(room)) === "calm and well",
      2000,
      "the calm client's edit",
    );
    expect(calm.closeEvent).toBeNull();
    calm.close();
  });

  it("maxAwarenessStateBytes: an awareness state over the limit closes the sender with 1009", async () => {
    const client = await TestClient.connect("limit-awareness");
    client.send(
      awarenessFrame([
        { clientId: client.doc.clientID, clock: 1, state: { blob: "x".repeat(9000) } },
      ]),
    );
    const closed = await client.closedWith();
    expect(closed.code).toBe(1009);
    expect(closed.reason).toMatch(/over maxAwarenessStateBytes=8192/);
  });

  it("maxDocumentBytes: content past the limit is refused with 1009, deletions still land, nothing else changes", async () => {
    const room = "limit-document";
    const writer = await TestClient.connect(room);
    const watcher = await TestClient.connect(room);
    const chunk = "d".repeat(20_000);
    let chunks = 0;
    while (writer.closeEvent === null && chunks < 10) {
      writer.doc.getText("t").insert(0, chunk);
      chunks++;
      await eventually(
        () => writer.closeEvent !== null || watcher.text.length === chunks * chunk.length,
        3000,
        "the chunk to land or be refused",
      );
    }
    const closed = await writer.closedWith();
    expect(closed.code).toBe(1009);
    expect(closed.reason).toMatch(
      /^document full: \d+ bytes stored, limit 131072 \(limits\.maxDocumentBytes\)/,
    );
    const stored = textOf(await documentOf(room));
    expect(stored.length).toBe((chunks - 1) * chunk.length); // the refused chunk never landed
    expect(watcher.text).toBe(stored);
    // A full room still takes deletions, so it can be trimmed.
    watcher.doc.getText("t").delete(0, chunk.length);
    await eventually(
      async () => textOf(await documentOf(room)).length === (chunks - 2) * chunk.length,
      2000,
      "the deletion",
    );
    expect(watcher.closeEvent).toBeNull();
    watcher.close();
  });
});

describe("REST rate limit per client key", () => {
  const tight = (restBurst: number) =>
    envWith({
      HALO_CONFIG: {
        environment: "development",
        defaultRegion: "wnam",
        shards: { wnam: 4 },
        auth: { anonymous: true },
        limits: { restRequestsPerSecond: 0.5, restBurst },
      },
    });

  it("answers 429 with Retry-After and the limit's name once a caller's burst is spent", async () => {
    const config = tight(3);
    const ip = { "cf-connecting-ip": "198.51.100.7" };
    for (let i = 0; i < 3; i++) {
      expect((await callWith(config, "/v1/rooms/rest-limit/presence", ip)).status).toBe(200);
    }
    const refused = await callWith(config, "/v1/rooms/rest-limit/presence", ip);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("2");
    expect(await refused.json()).toEqual({
      error: {
        code: "rate_limited",
        message:
          "over 0.5 requests/s (limits.restRequestsPerSecond) with a burst of 3 (limits.restBurst); retry after 2 s",
        limit: { name: "restRequestsPerSecond", value: 0.5 },
      },
    });
    // Another caller has a budget of its own.
    const other = await callWith(config, "/v1/rooms/rest-limit/document", {
      "cf-connecting-ip": "198.51.100.8",
    });
    expect(other.status).toBe(200);
  });

  it("keys a token holder by userId, so another IP does not give the same user a new budget", async () => {
    const config = tight(1);
    const bearer = `Bearer ${await token("rita", { "rest-*": ["read"] })}`;
    const first = await callWith(config, "/v1/rooms/rest-user", {
      authorization: bearer,
      "cf-connecting-ip": "198.51.100.20",
    });
    expect(first.status).toBe(200);
    const second = await callWith(config, "/v1/rooms/rest-user", {
      authorization: bearer,
      "cf-connecting-ip": "198.51.100.21",
    });
    expect(second.status).toBe(429);
  });
});

describe("admin endpoints", () => {
  const ADMIN = "an-admin-token-for-workers-tests";

  it("are off without an admin token", async () => {
    const response = await SELF.fetch("http://halo.test/v1/admin/shards");
    expect(response.status).toBe(404);
    expect(((await response.json()) as ErrorJson).error.code).toBe("admin_disabled");
  });

  it("refuse a request without the token, or with a wrong one", async () => {
    const config = envWith({ HALO_ADMIN_TOKEN: ADMIN });
    const missing = await callWith(config, "/v1/admin/shards");
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({
      error: { code: "missing_admin_token", field: "authorization" },
    });
    const wrong = await callWith(config, "/v1/admin/shards", {
      authorization: `Bearer ${ADMIN}x`,
    });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as ErrorJson).error.code).toBe("invalid_admin_token");
    // A user's room token is not an admin token.
    const user = await callWith(config, "/v1/admin/shards", {
      authorization: `Bearer ${await token("ada", { "*": ["read", "write", "presence"] })}`,
    });
    expect(user.status).toBe(401);
  });

  it("refuse to run with an admin token short enough to guess", async () => {
    const response = await callWith(envWith({ HALO_ADMIN_TOKEN: "short" }), "/v1/admin/shards", {
      authorization: "Bearer short",
    });
    expect(response.status).toBe(500);
    expect(((await response.json()) as ErrorJson).error.code).toBe("invalid_config");
  });

  it("list every shard, and show a room's storage and members, with the token", async () => {
    const client = await TestClient.connect("admin-room");
    client.setAwareness({ name: "ada" }, 1);
    client.doc.getText("t").insert(0, "admin can see me");
    await eventually(() => client.awareness.size === 1, 2000, "the echo");
    const auth = { authorization: `Bearer ${ADMIN}` };
    const admin = envWith({ HALO_ADMIN_TOKEN: ADMIN });
    const shards = await callWith(admin, "/v1/admin/shards", auth);
    expect(shards.status).toBe(200);
    const list = (await shards.json()) as {
      shards: Array<{ name: string; loadedRooms: number; sockets: number }>;
    };
    expect(list.shards.map((s) => s.name)).toHaveLength(4 + 4 + 2);
    expect(list.shards.reduce((sum, s) => sum + s.sockets, 0)).toBeGreaterThanOrEqual(1);

    const room = await callWith(admin, "/v1/admin/rooms/admin-room", auth);
    expect(room.status).toBe(200);
    const body = (await room.json()) as {
      connections: number;
      storage: { logUpdates: number; snapshotBytes: number };
      members: Array<{ clientId: number }>;
    };
    expect(body.connections).toBe(1);
    expect(body.storage.logUpdates + body.storage.snapshotBytes).toBeGreaterThan(0);
    expect(body.members.map((m) => m.clientId)).toEqual([client.doc.clientID]);
    client.close();
  });
});
