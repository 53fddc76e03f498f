import * as decoding from "lib0/decoding";
import { afterEach, describe, expect, it } from "vitest";
import { backoffDelay, DEFAULT_BACKOFF } from "../../src/client/backoff";
import { type MemberChange, PresenceView } from "../../src/client/presence-view";
import { expiryOf, refreshAt } from "../../src/client/token-expiry";
import { type RoomEffect, RoomReplica } from "../../src/core/room-replica";
import type { Member, PresenceEvent } from "../../src/presence/presence-schema";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import {
  type ServerExtensionMessage,
  serverExtensionMessageSchema,
} from "../../src/protocol/extension-messages";
import { MemoryRoomStorage } from "../../src/storage/memory-room-storage";
import { TEST_ROOM_LIMITS } from "./room-limits";
import { StockClient } from "./stock-client";

const T0 = 1_700_000_000_000;

function member(clientId: number, overrides: Partial<Member> = {}): Member {
  return {
    clientId,
    userId: `user-${clientId}`,
    connectionId: `c${clientId}`,
    region: "wnam",
    joinedAt: T0 + clientId,
    updatedAt: T0 + clientId,
    status: "present",
    state: { n: 0 },
    ...overrides,
  };
}

function snapshot(seq: number, members: Member[], page = 0, pages = 1): ServerExtensionMessage {
  return { type: "presence.snapshot", snapshot: { seq, members, users: [] }, page, pages };
}

function events(...list: PresenceEvent[]): ServerExtensionMessage {
  return { type: "presence.events", events: list };
}

const join = (seq: number, m: Member): PresenceEvent => ({
  type: "member.join",
  seq,
  at: T0,
  member: m,
});
const update = (seq: number, m: Member): PresenceEvent => ({
  type: "member.update",
  seq,
  at: T0,
  member: m,
});
const status = (seq: number, m: Member): PresenceEvent => ({
  type: "member.status",
  seq,
  at: T0,
  member: m,
});
const leave = (seq: number, m: Member): PresenceEvent => ({
  type: "member.leave",
  seq,
  at: T0,
  member: m,
  reason: "closed",
});

const summary = (changes: readonly MemberChange[]) =>
  changes.map((c) => `${c.type}:${c.member.clientId}${c.type === "leave" ? `:${c.reason}` : ""}`);

describe("PresenceView", () => {
  it("a snapshot, then events one above the last: join, update, status and leave, users derived", () => {
    const view = new PresenceView();
    expect(view.ready).toBe(false);
    expect(summary(view.receive(snapshot(10, [member(1)])).changes)).toEqual(["join:1"]);
    expect(view.ready).toBe(true);
    const two = member(2, { userId: "user-1" });
    const result = view.receive(
      events(
        join(11, two),
        update(12, member(1, { state: { n: 1 } })),
        status(13, member(2, { userId: "user-1", status: "reconnecting" })),
      ),
    );
    expect(result.resync).toBe(false);
    expect(summary(result.changes)).toEqual(["join:2", "update:1", "status:2"]);
    expect(view.users().map((u) => [u.userId, u.connections, u.status])).toEqual([
      ["user-1", 2, "present"],
    ]);
    expect(summary(view.receive(events(leave(14, two))).changes)).toEqual(["leave:2:closed"]);
    expect(view.members().map((m) => m.clientId)).toEqual([1]);
    // A repeat changes nothing.
    expect(view.receive(events(leave(14, two)))).toEqual({ changes: [], resync: false });
  });

  it("a skipped sequence number asks for a resync; the new snapshot reports only what really changed", () => {
    const view = new PresenceView();
    view.receive(snapshot(5, [member(1), member(2)]));
    const gap = view.receive(events(join(7, member(3))));
    expect(gap).toEqual({ changes: [], resync: true });
    expect(view.members().map((m) => m.clientId)).toEqual([1, 2]);
    // Meanwhile: 2 left, 3 joined, 1 unchanged.
    const after = view.receive(snapshot(9, [member(1), member(3)]));
    expect(summary(after.changes)).toEqual(["leave:2:timeout", "join:3"]);
  });

  it("after a reconnect, a member that stayed is no leave and no join (no flaps)", () => {
    const view = new PresenceView();
    view.receive(snapshot(1, [member(1), member(2)]));
    view.disconnected();
    const back = view.receive(snapshot(40, [member(1), member(2, { state: { n: 2 } })]));
    expect(summary(back.changes)).toEqual(["update:2"]);
  });

  it("a paged snapshot applies once every page is in; events that came meanwhile follow it", () => {
    const view = new PresenceView();
    expect(view.receive(snapshot(20, [member(1)], 0, 2)).changes).toEqual([]);
    expect(view.receive(events(join(20, member(2)), join(21, member(3)))).changes).toEqual([]);
    expect(view.ready).toBe(false);
    const done = view.receive(snapshot(20, [member(2)], 1, 2));
    // Event 20 is in the snapshot already; 21 follows it.
    expect(summary(done.changes)).toEqual(["join:1", "join:2", "join:3"]);
    expect(view.members().map((m) => m.clientId)).toEqual([1, 2, 3]);
  });
});

const toDestroy: Array<{ destroy(): void }> = [];
afterEach(() => {
  for (const item of toDestroy.splice(0)) item.destroy();
});

/** The extension messages among a room's effects for one connection. */
function extensionFor(
  connectionId: string,
  effects: readonly RoomEffect[],
): ServerExtensionMessage[] {
  const out: ServerExtensionMessage[] = [];
  for (const effect of effects) {
    const to =
      effect.kind === "send"
        ? effect.connectionId === connectionId
        : effect.kind === "multicast" && effect.connectionIds.includes(connectionId);
    if (!to || !("frame" in effect)) continue;
    const decoder = decoding.createDecoder(effect.frame);
    if (decoding.readVarUint(decoder) !== 100) continue;
    out.push(serverExtensionMessageSchema.parse(JSON.parse(decoding.readVarString(decoder))));
  }
  return out;
}

describe("PresenceView fed by the real room core", () => {
  it("holds exactly the room's members through joins, updates, a dropped connection and a leave", () => {
    const { room } = RoomReplica.open(
      "r",
      {
        storage: new MemoryRoomStorage(),
        presenceStore: new MemoryPresenceStore(),
        limits: TEST_ROOM_LIMITS,
        presence: { graceMs: 1000, historyFlushMs: 100 },
      },
      T0,
    );
    toDestroy.push(room);
    const view = new PresenceView();
    const feed = (effects: RoomEffect[]) => {
      for (const message of extensionFor("watcher", effects)) {
        const result = view.receive(message);
        expect(result.resync).toBe(false);
      }
    };
    const identity = (userId: string) => ({
      userId,
      rights: ["read", "write", "presence"] as ("read" | "write" | "presence")[],
      expiresAt: null,
    });
    feed(
      room.connect({
        connectionId: "watcher",
        region: "wnam",
        joinedAt: T0,
        identity: identity("w"),
        presenceEvents: true,
      }),
    );
    const clients = [new StockClient(11), new StockClient(12)];
    toDestroy.push(...clients);
    clients.forEach((client, i) => {
      const id = `c${i}`;
      feed(
        room.connect({
          connectionId: id,
          region: "wnam",
          joinedAt: T0 + i,
          identity: identity(`u${i}`),
        }),
      );
      client.awareness.setLocalState({ name: `client ${i}` });
      for (const frame of client.openFrames()) feed(room.receive(id, frame, T0 + 10));
      client.takeOutbox();
    });
    expect(view.members()).toEqual(room.members());
    clients[0]?.awareness.setLocalStateField("cursor", 3);
    for (const frame of clients[0]?.takeOutbox() ?? []) feed(room.receive("c0", frame, T0 + 20));
    feed(room.disconnect("c1", false, T0 + 30)); // dropped: reconnecting
    expect(view.members()).toEqual(room.members());
    expect(view.members().find((m) => m.clientId === 12)?.status).toBe("reconnecting");
    feed(room.disconnect("c0", true, T0 + 40)); // a goodbye: leaves
    feed(room.expire(T0 + 2000).effects); // the grace ends
    expect(view.members()).toEqual(room.members());
    expect(view.members()).toEqual([]);
  });
});

describe("backoffDelay", () => {
  it("full jitter under an exponential ceiling, capped at maxMs", () => {
    const settings = { initialMs: 100, maxMs: 5_000 };
    expect(backoffDelay(0, 0, settings)).toBe(0);
    expect(backoffDelay(0, 0.999, settings)).toBe(99);
    expect(backoffDelay(3, 0.5, settings)).toBe(400);
    expect(backoffDelay(30, 0.999, settings)).toBe(4995);
    expect(backoffDelay(-1, 0.5, settings)).toBe(50);
    expect(backoffDelay(2, 0.5)).toBe(Math.floor(0.5 * DEFAULT_BACKOFF.initialMs * 4));
  });
});

describe("token expiry", () => {
  const jwt = (claims: unknown) =>
    `e30.${btoa(JSON.stringify(claims)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}.sig`;

  it("reads exp without verifying, and schedules the refresh a margin before it", () => {
    expect(expiryOf(jwt({ exp: 1_800_000_000, sub: "ada" }))).toBe(1_800_000_000);
    expect(refreshAt(jwt({ exp: 1_800_000_000 }), 30_000)).toBe(1_800_000_000_000 - 30_000);
  });

  it("null for a token without a readable exp", () => {
    expect(expiryOf("not-a-jwt")).toBeNull();
    expect(expiryOf(jwt({ sub: "ada" }))).toBeNull();
    expect(expiryOf(jwt({ exp: "soon" }))).toBeNull();
    expect(expiryOf("a.!!!.c")).toBeNull();
    expect(refreshAt("x", 1000)).toBeNull();
  });
});
