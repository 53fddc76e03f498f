import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import * as Y from "yjs";
import type { ConnectionIdentity } from "../../src/auth/authenticate";
import type { ConnectionId } from "../../src/core/awareness-table";
import { FanoutBatch, type FanoutOptions } from "../../src/core/fanout-batch";
import { excludes, type RoomEffect, RoomReplica } from "../../src/core/room-replica";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import type { AwarenessEntry } from "../../src/protocol/awareness-codec";
import * as incoming from "../../src/protocol/incoming-message";
import { decodeIncomingMessage } from "../../src/protocol/incoming-message";
import { OutgoingMessage } from "../../src/protocol/outgoing-message";
import { MemoryRoomStorage } from "../../src/storage/memory-room-storage";
import { TEST_ROOM_LIMITS } from "./room-limits";
import { frameKind, MESSAGE_AWARENESS, MESSAGE_SYNC, StockClient } from "./stock-client";

const EVERYONE: ConnectionIdentity = {
  userId: "u",
  rights: ["read", "write", "presence"],
  expiresAt: null,
};

/** A 10 ms cap; 1 ms per 10 sockets (10,000 sends/s); 5 ms between writes (200/s). */
const FANOUT: FanoutOptions = { maxCoalesceMs: 10, sendsPerSecond: 10_000, writesPerSecond: 200 };

const toDestroy: Array<{ destroy(): void }> = [];
afterEach(() => {
  for (const item of toDestroy.splice(0)) item.destroy();
  vi.restoreAllMocks();
});

/**
 * A room with coalescing and stock clients, on virtual time: effects are carried out as the
 * shard does, and the fan-out timer is a deadline the test fires with `advance`.
 */
class CoalescingRoom {
  readonly storage = new MemoryRoomStorage();
  readonly replica: RoomReplica;
  readonly clients = new Map<ConnectionId, StockClient>();
  /** Frames each connection received, by kind. */
  readonly received = new Map<ConnectionId, { sync: number; awareness: number }>();
  /** The awareness frames each connection received, in order. */
  readonly awarenessFrames = new Map<ConnectionId, Uint8Array[]>();
  now = 1_000;
  fanoutAt: number | null = null;

  constructor(fanout: FanoutOptions = FANOUT) {
    this.replica = RoomReplica.open(
      "room",
      {
        storage: this.storage,
        presenceStore: new MemoryPresenceStore(),
        limits: TEST_ROOM_LIMITS,
        presence: { graceMs: 15_000, historyFlushMs: 2_000 },
        fanout,
      },
      this.now,
    ).room;
    toDestroy.push(this.replica);
  }

  join(id: ConnectionId, state: Record<string, unknown> | null = { name: id }): StockClient {
    const client = new StockClient();
    toDestroy.push(client);
    client.awareness.setLocalState(state);
    client.takeOutbox();
    this.clients.set(id, client);
    this.received.set(id, { sync: 0, awareness: 0 });
    this.apply(
      this.replica.connect({
        connectionId: id,
        region: "weur",
        joinedAt: this.now,
        identity: EVERYONE,
      }),
    );
    for (const frame of client.openFrames()) this.send(id, frame);
    return client;
  }

  /** Frames the room received, all connections together. */
  framesIn = 0;

  send(id: ConnectionId, frame: Uint8Array): void {
    this.framesIn++;
    this.apply(this.replica.receive(id, frame, this.now));
  }

  /** Every client's queued frames go to the room (one round). */
  pump(): void {
    for (const [id, client] of this.clients)
      for (const frame of client.takeOutbox()) this.send(id, frame);
  }

  leave(id: ConnectionId): void {
    this.clients.delete(id);
    this.apply(this.replica.disconnect(id, true, this.now));
  }

  /** Moves virtual time; the fan-out timer fires if it is due. */
  advance(ms: number): void {
    this.now += ms;
    if (this.fanoutAt !== null && this.fanoutAt <= this.now) {
      this.fanoutAt = null;
      this.apply(this.replica.flushFanout(this.now));
    }
  }

  /** Lets time pass until nothing is held back and no client has anything to send. */
  settle(): void {
    for (let round = 0; round < 50; round++) {
      this.pump();
      this.advance(FANOUT.maxCoalesceMs);
      if (this.fanoutAt === null && [...this.clients.values()].every((c) => c.outbox.length === 0))
        return;
    }
    throw new Error("room and clients did not settle");
  }

  apply(effects: readonly RoomEffect[]): void {
    const at = this.replica.takeFanoutAt();
    if (at !== null && (this.fanoutAt === null || at < this.fanoutAt)) this.fanoutAt = at;
    for (const effect of effects) {
      if (effect.kind === "send") this.deliver(effect.connectionId, effect.frame);
      if (effect.kind === "broadcast")
        for (const id of [...this.clients.keys()])
          if (!excludes(effect.except, id)) this.deliver(id, effect.frame);
    }
  }

  private deliver(id: ConnectionId, frame: Uint8Array): void {
    const client = this.clients.get(id);
    const counts = this.received.get(id);
    if (!client || !counts) return;
    const { type } = frameKind(frame);
    if (type === MESSAGE_SYNC) counts.sync++;
    if (type === MESSAGE_AWARENESS) {
      counts.awareness++;
      this.awarenessFrames.set(id, [...(this.awarenessFrames.get(id) ?? []), frame]);
    }
    client.receive(frame);
  }
}

function entriesOf(frame: Uint8Array): AwarenessEntry[] {
  const message = decodeIncomingMessage(frame, {
    maxFrameBytes: 1 << 20,
    maxAwarenessStateBytes: 1 << 16,
  });
  return message.type === "awareness" ? message.entries : [];
}

/** The states a client's awareness holds, by clientID (the y-protocols view of the room). */
function statesOf(client: StockClient): Record<number, unknown> {
  return Object.fromEntries(client.awareness.getStates());
}

describe("FanoutBatch.windowMs", () => {
  it("is 0 with maxCoalesceMs 0, whatever the load", () => {
    const batch = new FanoutBatch({ ...FANOUT, maxCoalesceMs: 0 });
    batch.addUpdate(new Uint8Array([0, 0]), "a");
    expect(batch.windowMs(10_000)).toBe(0);
  });

  it("grows with the sockets a frame goes to, and with a pending document write, up to the cap", () => {
    const batch = new FanoutBatch(FANOUT);
    expect(batch.windowMs(10)).toBe(1); // 10 sends per frame at 10,000/s
    expect(batch.windowMs(50)).toBe(5);
    expect(batch.windowMs(500)).toBe(10); // capped
    batch.addUpdate(new Uint8Array([0, 0]), "a");
    expect(batch.windowMs(10)).toBe(5); // a write at most every 1/200 s
  });
});

describe("RoomReplica with coalescing", () => {
  it("a change after a quiet spell leaves at once; the next ones in the window leave together, written once", () => {
    const room = new CoalescingRoom();
    const ada = room.join("ada");
    const bob = room.join("bob");
    const eve = room.join("eve");
    room.settle();
    const writesBefore = room.storage.writes;
    const eveSyncs = room.received.get("eve")?.sync ?? 0;

    ada.type(0, "a");
    room.pump();
    expect(room.received.get("eve")?.sync).toBe(eveSyncs + 1); // at once
    expect(room.storage.writes).toBe(writesBefore + 1);

    room.advance(1);
    ada.type(1, "b");
    bob.type(0, "c");
    room.pump();
    expect(room.received.get("eve")?.sync).toBe(eveSyncs + 1); // held back
    expect(eve.text).toBe("a");
    expect(room.fanoutAt).toBe(room.now - 1 + 5); // the write budget: 5 ms after the last drain

    room.advance(5);
    expect(room.received.get("eve")?.sync).toBe(eveSyncs + 2); // one frame for both
    expect(room.storage.writes).toBe(writesBefore + 2); // one write for both
    room.settle();
    expect(new Set([ada.text, bob.text, eve.text]).size).toBe(1);
    expect(eve.text).toHaveLength(3);
  });

  it("awareness changes of several senders leave as one frame to the others and one to each sender", () => {
    const room = new CoalescingRoom();
    const ada = room.join("ada");
    const bob = room.join("bob");
    const eve = room.join("eve");
    room.settle();
    const eveFrames = room.received.get("eve")?.awareness ?? 0;
    const adaFrames = room.received.get("ada")?.awareness ?? 0;

    ada.awareness.setLocalStateField("cursor", 1); // leading edge: at once
    room.pump();
    room.advance(0.1); // within the window: 3 sockets at 10,000 sends/s is 0.3 ms
    for (let i = 2; i < 6; i++) {
      ada.awareness.setLocalStateField("cursor", i);
      bob.awareness.setLocalStateField("cursor", i * 10);
      room.pump();
    }
    expect(room.received.get("eve")?.awareness).toBe(eveFrames + 1);
    room.advance(FANOUT.maxCoalesceMs);
    expect(room.received.get("eve")?.awareness).toBe(eveFrames + 2);
    expect(room.received.get("ada")?.awareness).toBe(adaFrames + 2);
    room.settle();
    for (const client of [ada, bob, eve]) {
      expect(statesOf(client)).toEqual({
        [ada.clientId]: { name: "ada", cursor: 5 },
        [bob.clientId]: { name: "bob", cursor: 50 },
        [eve.clientId]: { name: "eve" },
      });
    }
  });

  it("a leave never overtakes a held-back state: the others do not get a ghost back", () => {
    const room = new CoalescingRoom();
    const ada = room.join("ada");
    const eve = room.join("eve");
    room.settle();
    const seen = room.awarenessFrames.get("eve")?.length ?? 0;
    ada.awareness.setLocalStateField("cursor", 1);
    room.pump();
    room.advance(0.1);
    ada.awareness.setLocalStateField("cursor", 2); // held back
    room.pump();
    room.leave("ada"); // the held-back state goes first, then the removal
    room.settle();
    expect(statesOf(eve)).toEqual({ [eve.clientId]: { name: "eve" } });
    // In that order on the wire too, not only by the clocks: the last word on ada is her removal.
    const aboutAda = (room.awarenessFrames.get("eve") ?? [])
      .slice(seen)
      .flatMap((frame) => entriesOf(frame))
      .filter((entry) => entry.clientId === ada.clientId);
    expect(aboutAda.map((entry) => entry.json)).toEqual([
      expect.stringContaining('"cursor":1'),
      expect.stringContaining('"cursor":2'),
      "null",
    ]);
  });

  it("the last one out writes what was held back and folds the log into one snapshot", () => {
    const room = new CoalescingRoom();
    const ada = room.join("ada");
    room.settle();
    for (let i = 0; i < 20; i++) {
      ada.type(i, "x");
      room.pump();
      room.advance(0.1);
    }
    const text = ada.text;
    room.leave("ada");
    const stored = room.storage.load("room");
    expect(stored.log).toHaveLength(0);
    const doc = new Y.Doc();
    Y.applyUpdate(doc, stored.snapshot ?? new Uint8Array());
    expect(doc.getText("t").toString()).toBe(text);
  });

  it("counts: one decode per frame in, one encode per window out (plus one per sender), whatever the room's size", () => {
    const room = new CoalescingRoom({ ...FANOUT, sendsPerSecond: 100 }); // 40 sockets: a 10 ms window
    const clients = Array.from({ length: 40 }, (_, i) => room.join(`c${i}`));
    room.settle();
    const decodes = vi.spyOn(incoming, "decodeIncomingMessage");
    const awarenessEncodes = vi.spyOn(OutgoingMessage, "awareness");
    const updateEncodes = vi.spyOn(OutgoingMessage, "syncUpdate");
    const writes = room.storage.writes;
    const framesIn = room.framesIn;
    const heard = room.received.get("c39")?.awareness ?? 0;
    room.advance(20); // a quiet spell: the first change leaves at once
    const senders = clients.slice(0, 10);
    for (const [i, client] of senders.entries()) {
      client.awareness.setLocalStateField("cursor", i);
      client.type(0, "x");
      room.pump();
    }
    room.advance(10); // the window ends
    // Every frame in (the senders' changes, and stock clients re-sending what they hear) is
    // decoded once.
    expect(decodes).toHaveBeenCalledTimes(room.framesIn - framesIn);
    // Leading edge (1 change: 1 common frame + 1 own frame), then the window: 1 common frame
    // and one own frame per sender that changed in it (9).
    expect(awarenessEncodes).toHaveBeenCalledTimes(2 + 1 + 9);
    // The first update came just after the leading edge's drain, so all 10 wait: one merge, one
    // encode, one write.
    expect(updateEncodes).toHaveBeenCalledTimes(1);
    expect(room.storage.writes - writes).toBe(1);
    // A socket that sent nothing heard all 10 changes in 2 awareness frames.
    expect((room.received.get("c39")?.awareness ?? 0) - heard).toBe(2);
    room.settle();
    expect(new Set(clients.map((c) => c.text)).size).toBe(1);
  });

  it("with maxCoalesceMs 0 every change leaves in the call that made it", () => {
    const room = new CoalescingRoom({ ...FANOUT, maxCoalesceMs: 0 });
    const ada = room.join("ada");
    room.join("eve");
    room.settle();
    const before = room.received.get("eve")?.sync ?? 0;
    for (let i = 0; i < 5; i++) {
      ada.type(i, "y");
      room.pump();
    }
    expect(room.received.get("eve")?.sync).toBe(before + 5);
    expect(room.fanoutAt).toBeNull();
  });

  it("random edits, awareness changes, leaves and time steps converge as without coalescing (property)", () => {
    type Step =
      | { kind: "edit"; who: number; at: number; text: string }
      | { kind: "cursor"; who: number; value: number }
      | { kind: "time"; ms: number }
      | { kind: "leave"; who: number };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({
        kind: fc.constant("edit" as const),
        who: fc.nat(3),
        at: fc.nat(50),
        text: fc.string({ minLength: 1, maxLength: 3 }),
      }),
      fc.record({ kind: fc.constant("cursor" as const), who: fc.nat(3), value: fc.nat(1000) }),
      fc.record({
        kind: fc.constant("time" as const),
        ms: fc.double({ min: 0, max: 12, noNaN: true }),
      }),
      fc.record({ kind: fc.constant("leave" as const), who: fc.nat(3) }),
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        const room = new CoalescingRoom();
        const ids = ["a", "b", "c", "d"];
        const clients = ids.map((id) => room.join(id));
        const left = new Set<number>();
        for (const s of steps) {
          if (s.kind === "time") room.advance(s.ms);
          else if (left.has(s.who)) continue;
          else if (s.kind === "leave" && left.size < 3) {
            left.add(s.who);
            room.leave(ids[s.who] as string);
          } else if (s.kind === "edit") {
            const client = clients[s.who] as StockClient;
            client.type(Math.min(s.at, client.text.length), s.text);
          } else if (s.kind === "cursor") {
            (clients[s.who] as StockClient).awareness.setLocalStateField("cursor", s.value);
          }
          room.pump();
        }
        room.settle();
        const staying = clients.filter((_, i) => !left.has(i));
        const server = room.replica.encodeDocument();
        const serverDoc = new Y.Doc();
        Y.applyUpdate(serverDoc, server);
        for (const client of staying) {
          expect(client.text).toBe(serverDoc.getText("t").toString());
          // Each stays-er sees exactly the others who stayed, with their last state.
          const expected = Object.fromEntries(
            staying.map((c) => [c.clientId, c.awareness.getLocalState()]),
          );
          expect(statesOf(client)).toEqual(expected);
        }
        // Every edit, including those of clients who left, reached the room and its storage.
        const stored = room.storage.load("room");
        const storedDoc = new Y.Doc();
        for (const part of [stored.snapshot, ...stored.log])
          if (part) Y.applyUpdate(storedDoc, part);
        expect(storedDoc.getText("t").toString()).toBe(serverDoc.getText("t").toString());
        for (const client of clients)
          for (const [clientId, clock] of Y.decodeStateVector(Y.encodeStateVector(client.doc)))
            expect(Y.getState(storedDoc.store, clientId)).toBeGreaterThanOrEqual(clock);
      }),
      { numRuns: 150 },
    );
  });
});
