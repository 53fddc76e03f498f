import { env, evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Capability } from "../../src/auth/capabilities";
import { configFromEnv } from "../../src/config/config-schema";
import type { PresenceEvent } from "../../src/presence/presence-schema";
import { shardFor } from "../../src/routing/shard-router";
import { eventually, TestClient } from "./client";
import { token } from "./tokens";

const stubOf = (room: string) =>
  env.SHARD.get(env.SHARD.idFromName(shardFor(room, "wnam", configFromEnv(env)).name));

const ALL = (room: string): Capability => ({ [room]: ["read", "write", "presence"] });

/** Every presence event a subscriber received, in order. */
function eventsOf(client: TestClient): PresenceEvent[] {
  return client.extension.flatMap((m) =>
    m.type === "presence.events" ? (m.events as PresenceEvent[]) : [],
  );
}

/** Ada, whose token expires in 2 s, with a cursor; and Bob, subscribed to presence events, watching. */
async function adaAndBob(room: string): Promise<{ ada: TestClient; bob: TestClient }> {
  // 2 s: `exp` is in whole seconds, so 1 s could leave a few milliseconds.
  const ada = await TestClient.connect(room, `?token=${await token("ada", ALL(room), 2)}`);
  const bob = await TestClient.connect(
    room,
    `?presence=events&token=${await token("bob", ALL(room))}`,
  );
  ada.setAwareness({ name: "ada" }, 1);
  await eventually(
    () => eventsOf(bob).some((e) => e.type === "member.join" && e.member.userId === "ada"),
    2000,
    "Ada's join",
  );
  return { ada, bob };
}

describe("auth.refresh: a fresh token on the open socket", () => {
  it("keeps a connection open past its old expiry, answers auth.refreshed, and the room sees no presence change", async () => {
    const room = "refresh-ok";
    const connectedAt = Date.now();
    const { ada, bob } = await adaAndBob(room);
    const seen = eventsOf(bob).length;
    const cursor = bob.awareness.get(ada.doc.clientID);

    ada.control({ type: "auth.refresh", token: await token("ada", ALL(room), 600) });
    await eventually(
      () => ada.extension.some((m) => m.type === "auth.refreshed"),
      2000,
      "auth.refreshed",
    );
    const refreshed = ada.extension.find((m) => m.type === "auth.refreshed");
    expect(refreshed?.expiresAt).toBeGreaterThan(Date.now() + 590_000);
    expect(bob.extension.some((m) => m.type === "auth.refreshed")).toBe(false);

    // Past the old token's expiry, when the alarm would have closed it.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, connectedAt + 3000 - Date.now())),
    );
    expect(ada.closeEvent).toBeNull();
    ada.doc.getText("t").insert(0, "after the old expiry");
    await eventually(() => bob.text === "after the old expiry", 2000, "Ada's edit");
    // No leave, no status change, no join: not for Ada, not for anyone.
    expect(eventsOf(bob).slice(seen)).toEqual([]);
    expect(bob.awareness.get(ada.doc.clientID)).toEqual(cursor);
    ada.close();
    bob.close();
  });

  it("survives hibernation: the refreshed expiry is in the socket's attachment", async () => {
    const room = "refresh-hibernate";
    const connectedAt = Date.now();
    const { ada, bob } = await adaAndBob(room);
    ada.control({ type: "auth.refresh", token: await token("ada", ALL(room), 600) });
    await eventually(
      () => ada.extension.some((m) => m.type === "auth.refreshed"),
      2000,
      "auth.refreshed",
    );
    await evictDurableObject(stubOf(room)); // memory gone; the alarm reads the attachments
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, connectedAt + 3000 - Date.now())),
    );
    expect(ada.closeEvent).toBeNull();
    ada.doc.getText("t").insert(0, "awake again");
    await eventually(() => bob.text === "awake again", 2000, "Ada's edit after the wake-up");
    ada.close();
    bob.close();
  });

  it("closes with 1008 when the token names another user", async () => {
    const room = "refresh-other-user";
    const { ada, bob } = await adaAndBob(room);
    ada.control({ type: "auth.refresh", token: await token("mallory", ALL(room), 600) });
    expect(await ada.closedWith()).toEqual({
      code: 1008,
      reason: "token refresh names another user",
    });
    bob.close();
  });

  it("closes with 1008 for a garbage token, a forged one, and one without read in this room", async () => {
    const room = "refresh-bad";
    const forged = await token("ada", ALL(room), 600, new TextEncoder().encode("not-the-secret"));
    const elsewhere = await token("ada", ALL("another-room"), 600);
    const cases: Array<[string, string]> = [
      ["garbage", "token refresh refused: token is not a JWT"],
      [forged, "token refresh refused: signature does not verify"],
      [elsewhere, `token refresh refused: the token grants no read right in room "${room}"`],
    ];
    for (const [bad, reason] of cases) {
      const ada = await TestClient.connect(room, `?token=${await token("ada", ALL(room))}`);
      await eventually(() => ada.frames.length >= 1, 2000, "sync step 1");
      ada.control({ type: "auth.refresh", token: bad });
      expect(await ada.closedWith()).toEqual({ code: 1008, reason });
    }
  });

  it("applies narrowed rights at once: without write, the next edit is refused", async () => {
    const room = "refresh-narrow";
    const { ada, bob } = await adaAndBob(room);
    ada.control({
      type: "auth.refresh",
      token: await token("ada", { [room]: ["read", "presence"] }),
    });
    await eventually(
      () => ada.extension.some((m) => m.type === "auth.refreshed"),
      2000,
      "auth.refreshed",
    );
    ada.doc.getText("t").insert(0, "no longer allowed");
    const closed = await ada.closedWith();
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/^permission denied/);
    expect(bob.text).toBe("");
    bob.close();
  });
});
