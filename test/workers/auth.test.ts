import { createExecutionContext, env, runDurableObjectAlarm, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { configFromEnv } from "../../src/config/config-schema";
import { shardFor } from "../../src/routing/shard-router";
import worker from "../../src/worker";
import { documentOf, eventually, HANDSHAKE_HEADERS, TestClient, untilServerText } from "./client";
import { token } from "./tokens";

const stubOf = (room: string) =>
  env.SHARD.get(env.SHARD.idFromName(shardFor(room, "wnam", configFromEnv(env)).name));

async function json(path: string, init?: RequestInit) {
  const response = await SELF.fetch(`http://halo.test${path}`, init);
  return {
    response,
    body: (await response.json()) as { error: { code: string; message: string; field?: string } },
  };
}

describe("tokens at the door", () => {
  it("refuses a token with a bad signature with 401 and a Bearer challenge", async () => {
    const forged = await token(
      "mallory",
      { "*": ["read"] },
      600,
      new TextEncoder().encode("not-the-secret"),
    );
    const { response, body } = await json(`/v1/rooms/door-1?token=${forged}`, {
      headers: HANDSHAKE_HEADERS,
    });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(body.error).toMatchObject({ code: "invalid_token", field: "token" });
    expect(body.error.message).toMatch(/signature/);
  });

  it("refuses an expired token with 401 expired_token", async () => {
    const stale = await token("ada", { "*": ["read"] }, -60);
    const { response, body } = await json(`/v1/rooms/door-2?token=${stale}`, {
      headers: HANDSHAKE_HEADERS,
    });
    expect(response.status).toBe(401);
    expect(body.error.code).toBe("expired_token");
  });

  it("refuses a token without the read right in that room with 403, on WebSocket and REST alike", async () => {
    const other = await token("ada", { "elsewhere:*": ["read", "write", "presence"] });
    const upgrade = await json(`/v1/rooms/door-3?token=${other}`, { headers: HANDSHAKE_HEADERS });
    expect(upgrade.response.status).toBe(403);
    expect(upgrade.body.error.code).toBe("forbidden");
    const rest = await json("/v1/rooms/door-3/presence", {
      headers: { Authorization: `Bearer ${other}` },
    });
    expect(rest.response.status).toBe(403);
  });

  it("accepts the token from the Authorization header for REST", async () => {
    const reader = await token("ada", { "door-*": ["read"] });
    const response = await SELF.fetch("http://halo.test/v1/rooms/door-4/presence", {
      headers: { Authorization: `Bearer ${reader}` },
    });
    expect(response.status).toBe(200);
  });

  it("serves nothing when production configuration has no key", async () => {
    const production = {
      ...env,
      HALO_TOKEN_SECRET: undefined,
      HALO_CONFIG: { environment: "production", shards: { wnam: 1 } },
    };
    const response = await worker.fetch(
      new Request("http://halo.test/healthz"),
      production,
      createExecutionContext(),
    );
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({
      error: { code: "invalid_config", message: expect.stringMatching(/HALO_TOKEN_SECRET/) },
    });
  });
});

describe("rights enforced in the shard", () => {
  it("a read-only connection receives the document, but its update is refused with an auth message and 1008 and never applied", async () => {
    const room = "rights-read";
    const writer = await TestClient.connect(
      room,
      `?token=${await token("writer", { [room]: ["read", "write", "presence"] })}`,
    );
    writer.doc.getText("t").insert(0, "only writers write");
    await untilServerText(room, "only writers write");

    const reader = await TestClient.connect(
      room,
      `?token=${await token("reader", { [room]: ["read"] })}`,
    );
    await eventually(() => reader.text === "only writers write", 2000, "the reader to sync");
    const before = await documentOf(room);

    reader.doc.getText("t").insert(0, "sneaky ");
    const closed = await reader.closedWith();
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/permission denied/);
    // y-protocols/auth: message type 2, "permission denied" 0, then the reason.
    const denial = reader.frames.find((frame) => frame[0] === 2);
    expect(denial?.[1]).toBe(0);
    expect(await documentOf(room)).toEqual(before);
    writer.doc.getText("t").insert(0, "still ");
    await untilServerText(room, "still only writers write"); // the room keeps working
    writer.close();
  });

  it("drops the awareness of a connection without the presence right, and keeps it connected", async () => {
    const room = "rights-presence";
    const watcher = await TestClient.connect(
      room,
      `?token=${await token("watcher", { [room]: ["read", "presence"] })}`,
    );
    const silent = await TestClient.connect(
      room,
      `?token=${await token("silent", { [room]: ["read", "write"] })}`,
    );
    silent.setAwareness({ name: "silent" }, 1);
    watcher.setAwareness({ name: "watcher" }, 1);
    await eventually(() => silent.awareness.has(watcher.doc.clientID), 2000, "the watcher's state");
    expect(watcher.awareness.has(silent.doc.clientID)).toBe(false);
    expect(silent.closeEvent).toBeNull();
    // Its document writes still go through.
    silent.doc.getText("t").insert(0, "write without presence");
    await eventually(() => watcher.text === "write without presence", 2000, "the write");
    watcher.close();
    silent.close();
  });

  it("closes a connection whose token expires, with 1008 and a reason the client can act on", async () => {
    const room = "rights-expiry";
    const client = await TestClient.connect(
      room,
      // 2 s: `exp` is in whole seconds, so 1 s could leave a few milliseconds.
      `?token=${await token("brief", { [room]: ["read", "write", "presence"] }, 2)}`,
    );
    await eventually(() => client.frames.length >= 1, 2000, "sync step 1");
    expect(client.closeEvent).toBeNull();
    // The shard's alarm, set for the token's exp, closes it (nothing else could: no timer runs).
    await eventually(() => client.closeEvent !== null, 3000, "the expiry close");
    expect(client.closeEvent).toEqual({
      code: 1008,
      reason: "token expired; reconnect with a fresh token",
    });
    // Nothing left to expire: the alarm chain ends. It may still owe one load report to the
    // region's directory, and its replica of the room works until it has been idle for
    // `replication.idleLeaveMs` (1 s here) and left the room's replica set.
    let pending = true;
    for (let i = 0; i < 20 && pending; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250)); // past loadReportMs (200 here)
      pending = await runDurableObjectAlarm(stubOf(room));
    }
    expect(pending).toBe(false);
  });

  it("lists members with the userId from the token, and the ?user= of anonymous development access", async () => {
    const room = "rights-members";
    const named = await TestClient.connect(
      room,
      `?token=${await token("ada@example", { [room]: ["read", "presence"] })}`,
    );
    const anonymous = await TestClient.connect(room, "?user=grace");
    named.setAwareness({ n: 1 }, 1);
    anonymous.setAwareness({ n: 2 }, 1);
    await eventually(() => named.awareness.size === 2, 2000, "both states");
    const response = await SELF.fetch(`http://halo.test/v1/rooms/${room}/presence`);
    const body = (await response.json()) as { members: Array<{ userId: string }> };
    expect(body.members.map((m) => m.userId).sort()).toEqual(["ada@example", "grace"]);
    named.close();
    anonymous.close();
  });

  it("rejects an invalid ?user= with 400 naming the field", async () => {
    const { response, body } = await json("/v1/rooms/rights-user?user=has%20space", {
      headers: HANDSHAKE_HEADERS,
    });
    expect(response.status).toBe(400);
    expect(body.error).toMatchObject({ code: "invalid_user", field: "user" });
  });

  it("keeps a read-only client connected while its step 2 carries nothing new", async () => {
    const room = "rights-empty-step2";
    const reader = await TestClient.connect(
      room,
      `?token=${await token("reader", { [room]: ["read"] })}`,
    );
    await eventually(() => reader.frames.length >= 2, 2000, "the handshake");
    expect(reader.closeEvent).toBeNull();
    expect(Y.encodeStateAsUpdate(reader.doc).byteLength).toBeLessThanOrEqual(2);
    reader.close();
  });
});
