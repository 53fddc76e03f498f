import * as decoding from "lib0/decoding";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import * as Y from "yjs";
import { systemClock } from "../../src/client/client-clock";
import { connect, type HaloClient, type Room } from "../../src/client/index";
import { PresenceView } from "../../src/client/presence-view";
import type { ConnectionAttachment } from "../../src/core/connection-attachment";
import { type RoomDependencies, type RoomEffect, RoomReplica } from "../../src/core/room-replica";
import type { Member, PresenceEvent } from "../../src/presence/presence-schema";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import type { ServerExtensionMessage } from "../../src/protocol/extension-messages";
import { MemoryRoomStorage } from "../../src/storage/memory-room-storage";
import { TEST_ROOM_LIMITS } from "./room-limits";
import { SocketHub } from "./sdk-hub";

/**
 * Gaps in the presence sequence numbers, with the SDK's real classes against the real room core.
 * The cost model (bench/cost-model.ts, 10 rooms of 10 SDK members) counted 110 `presence.resync`
 * frames in its active window. The events themselves never skip a number, with fan-out
 * coalescing or without; the gap was the shard waking from hibernation (its idle window):
 * the reloaded roster numbers from `load time × 1024` (presence-roster.ts), so every
 * subscriber saw one jump (100), and each member of a room where a second events frame came
 * before the snapshot asked again (10): the view asked once per frame, not once per gap.
 */

const ROOM = "gap-room";
const MEMBERS = 10;
/** The shard's defaults (config-schema.ts, `fanout`). */
const FANOUT = { maxCoalesceMs: 20, sendsPerSecond: 50_000, writesPerSecond: 500 };

let hub: SocketHub;
const clients: HaloClient[] = [];

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
  hub = new SocketHub();
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  hub.destroy();
  vi.useRealTimers();
});

const run = (ms: number) => vi.advanceTimersByTimeAsync(ms);

/**
 * The room as the shard holds it, in the hub: fan-out windows flushed from a timer, as
 * durable-objects/fanout-timers.ts does, and each connection's latest attachment kept (what
 * survives hibernation), so `wake()` can reload the room as a woken shard does.
 */
function shardRoom(fanout: boolean) {
  const deps: RoomDependencies = {
    storage: new MemoryRoomStorage(),
    presenceStore: new MemoryPresenceStore(),
    limits: TEST_ROOM_LIMITS,
    presence: { graceMs: 5_000, historyFlushMs: 30_000 },
    ...(fanout ? { fanout: FANOUT } : {}),
  };
  // The hub carries out effects; its own calls into a room go through `hub.rooms`.
  const apply = (room: RoomReplica, effects: RoomEffect[]) =>
    (hub as unknown as { apply(room: RoomReplica, effects: RoomEffect[]): void }).apply(
      room,
      effects,
    );
  const attachments = new Map<string, ConnectionAttachment>();
  let fanoutFlushes = 0;

  const after = (room: RoomReplica, effects: RoomEffect[]): RoomEffect[] => {
    for (const effect of effects)
      if (effect.kind === "attach") attachments.set(effect.connectionId, effect.attachment);
    const at = room.takeFanoutAt();
    if (at !== null) {
      setTimeout(
        () => {
          fanoutFlushes++;
          apply(room, after(room, room.flushFanout(Date.now())));
        },
        Math.max(0, at - Date.now()),
      );
    }
    return effects;
  };
  const install = (room: RoomReplica): RoomReplica => {
    const connectRoom = room.connect.bind(room);
    const receive = room.receive.bind(room);
    room.connect = (info) => after(room, connectRoom(info));
    room.receive = (connectionId, frame, nowMs) => after(room, receive(connectionId, frame, nowMs));
    hub.rooms.set(ROOM, room);
    return room;
  };
  install(RoomReplica.open(ROOM, deps, Date.now()).room);

  return {
    get fanoutFlushes() {
      return fanoutFlushes;
    },
    /** The shard hibernated (memory dropped, nothing written) and a frame woke it. */
    wake(): void {
      hub.rooms.get(ROOM)?.destroy();
      const { room, effects } = RoomReplica.open(ROOM, deps, Date.now(), [...attachments.values()]);
      apply(install(room), effects);
    },
  };
}

async function members(count: number): Promise<Array<{ doc: Y.Doc; room: Room }>> {
  const joined: Array<{ doc: Y.Doc; room: Room }> = [];
  for (let i = 0; i < count; i++) {
    const client = connect({
      fetch: async () => {
        throw new TypeError("fetch failed");
      },
      url: "http://halo.test",
      user: `member-${i}`,
      WebSocket: hub.WebSocket,
      clock: systemClock,
    });
    clients.push(client);
    const doc = new Y.Doc();
    joined.push({ doc, room: client.room(ROOM, { doc, presence: { cursor: -1 } }) });
  }
  await run(1_000);
  return joined;
}

/** `presence.resync` frames each socket sent, in socket order. */
function resyncsPerSocket(): number[] {
  return hub.sockets.map((socket) => {
    let count = 0;
    for (const frame of socket.sent) {
      if (typeof frame === "string") continue;
      const decoder = decoding.createDecoder(frame);
      if (decoding.readVarUint(decoder) !== 100) continue;
      const message = JSON.parse(decoding.readVarString(decoder)) as { type: string };
      if (message.type === "presence.resync") count++;
    }
    return count;
  });
}

/** The cursor each view shows for each member, by userId. */
function cursorsSeen(joined: ReadonlyArray<{ room: Room }>): Array<Record<string, unknown>> {
  return joined.map(({ room }) =>
    Object.fromEntries(room.presence.members().map((m) => [m.userId, m.state.cursor])),
  );
}

describe("presence sequence numbers seen by the SDK", () => {
  for (const fanout of [false, true]) {
    it(`never skip a number in a live room (fan-out coalescing ${fanout ? "on" : "off"})`, async () => {
      const shard = shardRoom(fanout);
      const joined = await members(MEMBERS);
      expect(resyncsPerSocket()).toEqual(Array(MEMBERS).fill(0));
      // The cost model's activity: a cursor move per member per second, an edit every 10 s;
      // here the moves of a second land within 10 ms, so coalescing windows are exercised.
      const last: Record<string, number> = {};
      for (let t = 0; t < 20_000; t += 1_000) {
        for (const [i, { doc, room }] of joined.entries()) {
          room.presence.update({ cursor: t + i });
          last[`member-${i}`] = t + i;
          if (t % 10_000 === i * 1_000) doc.getText("t").insert(0, "ab");
          await run(1);
        }
        await run(1_000 - MEMBERS);
      }
      await run(100);
      expect(resyncsPerSocket()).toEqual(Array(MEMBERS).fill(0));
      for (const seen of cursorsSeen(joined)) expect(seen).toEqual(last);
      if (fanout) expect(shard.fanoutFlushes).toBeGreaterThan(0);
    });
  }

  it("after a hibernation wake, each subscriber asks for one snapshot, however many frames come before it", async () => {
    const shard = shardRoom(true);
    const joined = await members(MEMBERS);
    shard.wake();
    // Two members move at once: every subscriber gets two events frames numbered from the new
    // load before its snapshot can come back (one hop each way).
    joined[0]?.room.presence.update({ cursor: 100 });
    joined[1]?.room.presence.update({ cursor: 101 });
    await run(100);
    // One jump, one resync each (the view asked again for the second frame before).
    expect(resyncsPerSocket()).toEqual(Array(MEMBERS).fill(1));
    const expected = Object.fromEntries(
      joined.map((_, i) => [`member-${i}`, i === 0 ? 100 : i === 1 ? 101 : -1]),
    );
    for (const seen of cursorsSeen(joined)) expect(seen).toEqual(expected);
    // Numbered on from the snapshot: no more gaps.
    for (const [i, { room }] of joined.entries()) {
      room.presence.update({ cursor: 200 + i });
      await run(1);
    }
    await run(100);
    expect(resyncsPerSocket()).toEqual(Array(MEMBERS).fill(1));
  });
});

const T0 = 1_700_000_000_000;
const member = (clientId: number, cursor = 0): Member => ({
  clientId,
  userId: `user-${clientId}`,
  connectionId: `conn-${clientId}`,
  region: "wnam",
  joinedAt: T0,
  updatedAt: T0,
  status: "present",
  state: { cursor },
});
const snapshot = (seq: number, members: Member[]): ServerExtensionMessage => ({
  type: "presence.snapshot",
  snapshot: { seq, members, users: [] },
  page: 0,
  pages: 1,
});
const update = (seq: number, m: Member): PresenceEvent => ({
  type: "member.update",
  seq,
  at: T0,
  member: m,
});
const events = (...list: PresenceEvent[]): ServerExtensionMessage => ({
  type: "presence.events",
  events: list,
});

describe("PresenceView resync requests", () => {
  it("asks once per gap: again only after a snapshot or a reconnect", () => {
    const view = new PresenceView();
    view.receive(snapshot(10, [member(1)]));
    expect(view.receive(events(update(20, member(1, 1)))).resync).toBe(true);
    // Still behind the gap until the snapshot comes: no second request.
    expect(view.receive(events(update(21, member(1, 2)))).resync).toBe(false);
    view.receive(snapshot(21, [member(1, 2)]));
    expect(view.receive(events(update(22, member(1, 3)))).resync).toBe(false);
    expect(view.members()[0]?.state).toEqual({ cursor: 3 });
    // A new gap asks again.
    expect(view.receive(events(update(30, member(1, 4)))).resync).toBe(true);
    expect(view.receive(events(update(31, member(1, 5)))).resync).toBe(false);
    // The socket closed before the snapshot came: the next connection starts afresh.
    view.disconnected();
    view.receive(snapshot(40, [member(1, 6)]));
    expect(view.receive(events(update(50, member(1, 7)))).resync).toBe(true);
  });
});
