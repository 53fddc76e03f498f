import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { afterEach, describe, expect, it, vi } from "vitest";
import * as awarenessProtocol from "y-protocols/awareness";
import * as Y from "yjs";
import type { ConnectionIdentity } from "../../src/auth/authenticate";
import { CLOCK_STEPS_PER_MS, type ConnectionId } from "../../src/core/awareness-table";
import {
  type ConnectionAttachment,
  connectionAttachmentSchema,
  fromStoredAttachment,
  toStoredAttachment,
} from "../../src/core/connection-attachment";
import {
  excludes,
  type RoomDependencies,
  type RoomEffect,
  type RoomLimits,
  RoomReplica,
} from "../../src/core/room-replica";
import type { PresenceOptions } from "../../src/presence/presence-roster";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import type { AwarenessEntry } from "../../src/protocol/awareness-codec";
import { decodeIncomingMessage } from "../../src/protocol/incoming-message";
import { OutgoingMessage } from "../../src/protocol/outgoing-message";
import { ProtocolError } from "../../src/protocol/protocol-error";
import { MemoryRoomStorage } from "../../src/storage/memory-room-storage";
import type { RoomStorage } from "../../src/storage/room-storage";
import { TEST_ROOM_LIMITS } from "./room-limits";
import {
  awarenessFrame,
  awarenessPayloadOf,
  buildFrame,
  frameKind,
  MESSAGE_AWARENESS,
  MESSAGE_SYNC,
  queryAwarenessFrame,
  rawAwarenessFrame,
  StockClient,
  syncStep1Frame,
  syncStep2Frame,
  syncUpdateFrame,
} from "./stock-client";

const LIMITS: RoomLimits = TEST_ROOM_LIMITS;

/** The clock of tests that do not care about time (Unix ms). */
const NOW = 1_000_000;

const ROOM = "team:doc-1";

const toDestroy: Array<{ destroy(): void }> = [];
afterEach(() => {
  for (const item of toDestroy.splice(0)) item.destroy();
});

/** What the shell stores and reads back: the stored form, through a structured clone (as the platform does). */
function roundTrip(attachment: ConnectionAttachment | undefined): ConnectionAttachment {
  if (!attachment) throw new Error("no attachment");
  const back = fromStoredAttachment(structuredClone(toStoredAttachment(attachment)));
  if (!back) throw new Error("attachment did not survive storage");
  return back;
}

/** How many times each storage has had the room loaded: the n-th load happens at second n. */
const loadsOf = new WeakMap<RoomStorage, number>();
/** Each document storage's presence store: a room's two halves live in one SQLite database. */
const presenceStores = new WeakMap<RoomStorage, MemoryPresenceStore>();

const PRESENCE: PresenceOptions = { graceMs: 15_000, historyFlushMs: 2_000 };

function depsOf(storage: RoomStorage, limits: RoomLimits): RoomDependencies {
  let presenceStore = presenceStores.get(storage);
  if (!presenceStore) {
    presenceStore = new MemoryPresenceStore();
    presenceStores.set(storage, presenceStore);
  }
  return { storage, presenceStore, limits, presence: PRESENCE };
}

function open(
  storage: RoomStorage = new MemoryRoomStorage(),
  limits = LIMITS,
  restored: readonly ConnectionAttachment[] = [],
): RoomReplica {
  const load = (loadsOf.get(storage) ?? 0) + 1;
  loadsOf.set(storage, load);
  const { room } = RoomReplica.open(ROOM, depsOf(storage, limits), load * 1000, restored);
  toDestroy.push(room);
  return room;
}

/** A stock client; like a fresh `Awareness`, it has a state (`{}`) unless told otherwise. */
function stockClient(state: Record<string, unknown> | null = {}, clientId?: number): StockClient {
  const client = new StockClient(clientId);
  client.awareness.setLocalState(state);
  client.takeOutbox();
  toDestroy.push(client);
  return client;
}

/** Every right, no expiry: what an anonymous development connection gets. */
const EVERYONE: ConnectionIdentity = {
  userId: "user-1",
  rights: ["read", "write", "presence"],
  expiresAt: null,
};

function info(
  connectionId: ConnectionId,
  joinedAt = 1000,
  identity: ConnectionIdentity = EVERYONE,
) {
  return { connectionId, region: "weur", joinedAt, identity };
}

/** The single update frame a client's local edit produces. */
function edit(client: StockClient, index: number, text: string): Uint8Array {
  client.takeOutbox();
  client.type(index, text);
  const frames = client.takeOutbox().filter((f) => frameKind(f).type === MESSAGE_SYNC);
  expect(frames).toHaveLength(1);
  return frames[0] as Uint8Array;
}

function textOf(update: Uint8Array): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  return doc.getText("t").toString();
}

function awarenessStatesOf(frame: Uint8Array): Map<number, Record<string, unknown> | null> {
  const message = decodeIncomingMessage(frame, {
    maxFrameBytes: 1 << 20,
    maxAwarenessStateBytes: 1 << 16,
  });
  if (message.type !== "awareness") throw new Error(`expected awareness, got ${message.type}`);
  return new Map(message.entries.map((e) => [e.clientId, JSON.parse(e.json)]));
}

/** `send:<to>:<frame>`, `broadcast:<frame>` or `broadcast:<frame>:except:<id>`, `attach:<id>`, `close:<id>`, `fail-room`. */
function kinds(effects: readonly RoomEffect[]): string[] {
  return effects.map((e) => {
    switch (e.kind) {
      case "send":
        return `send:${e.connectionId}:${frameName(e.frame)}`;
      case "broadcast":
        return `broadcast:${frameName(e.frame)}${e.except === undefined ? "" : `:except:${typeof e.except === "string" ? e.except : [...e.except].join(",")}`}`;
      case "fail-room":
        return "fail-room";
      case "multicast":
        return `multicast:${e.connectionIds.join(",")}`;
      default:
        return `${e.kind}:${e.connectionId}`;
    }
  });
}

function frameName(frame: Uint8Array): string {
  const { type, step } = frameKind(frame);
  if (type === 100) return "extension";
  return type === MESSAGE_AWARENESS ? "awareness" : `sync${step === undefined ? "" : step}`;
}

/** The entries of a server awareness frame. */
function awarenessEntriesOf(frame: Uint8Array): AwarenessEntry[] {
  const message = decodeIncomingMessage(frame, {
    maxFrameBytes: 1 << 20,
    maxAwarenessStateBytes: 1 << 16,
  });
  if (message.type !== "awareness") throw new Error(`expected awareness, got ${message.type}`);
  return message.entries;
}

/**
 * Where relay clocks of the n-th load of a room on one storage start: `open()` above loads the
 * n-th time at second n (n × 1000 ms), and a table loaded at millisecond t starts at
 * t × CLOCK_STEPS_PER_MS. A claim is relayed at `max(floor, previous) + 2`, a
 * change at `relay clock + 2`, a removal at `relay clock + 1` (awareness-table.ts).
 */
function floorOfLoad(n: number): number {
  return n * 1000 * CLOCK_STEPS_PER_MS;
}

/** A client's own awareness clock. */
function ownClock(client: StockClient): number {
  return client.awareness.meta.get(client.clientId)?.clock ?? -1;
}

/** Counts the awareness updates a client applies from the network (not its own local changes). */
function countRemoteUpdates(client: StockClient): { readonly count: number } {
  const counter = { count: 0 };
  client.awareness.on("update", (_changes: unknown, origin: unknown) => {
    if (origin !== "local") counter.count++;
  });
  return counter;
}

/**
 * A replica with stock clients attached: effects are carried out the way the shard shell
 * would (send, broadcast to every open connection but `except`, close, attach, and for
 * fail-room close every socket with 1011).
 */
class Harness {
  readonly replica: RoomReplica;
  readonly clients = new Map<ConnectionId, StockClient>();
  readonly closed = new Map<ConnectionId, { code: number; reason: string }>();
  readonly attachments = new Map<ConnectionId, ConnectionAttachment>();
  /** Every frame delivered to each connection, in order. */
  readonly delivered = new Map<ConnectionId, Uint8Array[]>();
  /** The reason of a fail-room effect, once one was carried out. */
  failed: string | null = null;

  constructor(
    limits = LIMITS,
    readonly storage = new MemoryRoomStorage(),
    /** Sockets that survived hibernation, their clients still on the other end. */
    restored: ReadonlyArray<[StockClient, ConnectionAttachment]> = [],
  ) {
    for (const [client, attachment] of restored) {
      this.clients.set(attachment.connectionId, client);
      this.attachments.set(attachment.connectionId, attachment);
    }
    this.replica = open(
      this.storage,
      limits,
      restored.map(([, attachment]) => attachment),
    );
  }

  connect(connectionId: ConnectionId, client: StockClient, joinedAt = 1000): void {
    this.clients.set(connectionId, client);
    client.takeOutbox(); // nothing is sent before the socket opens
    this.apply(this.replica.connect(info(connectionId, joinedAt)));
    for (const frame of client.openFrames()) this.send(connectionId, frame);
    this.flushClients();
  }

  send(connectionId: ConnectionId, frame: Uint8Array): RoomEffect[] {
    const effects = this.replica.receive(connectionId, frame, NOW);
    this.apply(effects);
    return effects;
  }

  disconnect(connectionId: ConnectionId): RoomEffect[] {
    this.clients.delete(connectionId);
    const effects = this.replica.disconnect(connectionId, false, NOW);
    this.apply(effects);
    return effects;
  }

  /** Sends whatever the clients have queued, until nothing moves. */
  flushClients(maxRounds = 10): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = 0;
      for (const [connectionId, client] of this.clients) {
        for (const frame of client.takeOutbox()) {
          moved++;
          this.send(connectionId, frame);
        }
      }
      if (moved === 0) return;
    }
    throw new Error("clients and server did not settle");
  }

  apply(effects: readonly RoomEffect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case "send":
          this.deliver(effect.connectionId, effect.frame);
          break;
        case "broadcast":
          for (const id of [...this.clients.keys()]) {
            if (!excludes(effect.except, id)) this.deliver(id, effect.frame);
          }
          break;
        case "close":
          this.clients.delete(effect.connectionId);
          this.closed.set(effect.connectionId, { code: effect.code, reason: effect.reason });
          break;
        case "attach":
          this.attachments.set(effect.connectionId, effect.attachment);
          break;
        case "fail-room":
          for (const id of this.clients.keys()) {
            this.closed.set(id, { code: 1011, reason: effect.reason });
          }
          this.clients.clear();
          this.failed = effect.reason;
          return;
      }
    }
  }

  private deliver(connectionId: ConnectionId, frame: Uint8Array): void {
    const client = this.clients.get(connectionId);
    if (!client) return;
    let frames = this.delivered.get(connectionId);
    if (!frames) {
      frames = [];
      this.delivered.set(connectionId, frames);
    }
    frames.push(frame);
    client.receive(frame);
  }
}

describe("RoomReplica: connect", () => {
  it("sends sync step 1 and an attach effect, and no awareness while nobody has a state", () => {
    const replica = open();
    const effects = replica.connect(info("c1", 1234));
    expect(kinds(effects)).toEqual(["send:c1:sync0", "attach:c1"]);
    const [step1, attach] = effects;
    if (step1?.kind !== "send" || attach?.kind !== "attach") throw new Error("unexpected effects");
    const message = decodeIncomingMessage(step1.frame, LIMITS);
    expect(message).toEqual({ type: "sync-step1", stateVector: Y.encodeStateVector(new Y.Doc()) });
    expect(connectionAttachmentSchema.parse(attach.attachment)).toEqual({
      v: 1,
      room: ROOM,
      connectionId: "c1",
      region: "weur",
      joinedAt: 1234,
      identity: EVERYONE,
      presenceEvents: false,
      clients: [],
    });
    expect(replica.connectionCount).toBe(1);
  });

  it("sends step 1 with the document's state vector, then the present awareness, then attach", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" });
    room.connect("a", alice);
    room.send("a", edit(alice, 0, "hi"));

    const effects = room.replica.connect(info("b"));
    expect(kinds(effects)).toEqual(["send:b:sync0", "send:b:awareness", "attach:b"]);
    const [step1, awareness] = effects;
    if (step1?.kind !== "send" || awareness?.kind !== "send") throw new Error("unexpected");
    const message = decodeIncomingMessage(step1.frame, LIMITS);
    expect(message.type === "sync-step1" && Y.decodeStateVector(message.stateVector)).toEqual(
      new Map([[alice.clientId, 2]]),
    );
    expect(awarenessStatesOf(awareness.frame)).toEqual(
      new Map([[alice.clientId, { name: "Alice" }]]),
    );
    // A resync snapshot: relay clock + 1, for a client that kept its peers' clocks.
    const relayClock = room.attachments.get("a")?.clients[0]?.clock ?? -1;
    expect(awarenessEntriesOf(awareness.frame)).toEqual([
      { clientId: alice.clientId, clock: relayClock + 1, json: '{"name":"Alice"}' },
    ]);
  });

  it("a stock client that connects to a room with content receives it and sends back what it has", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" });
    room.connect("a", alice);
    room.send("a", edit(alice, 0, "shared"));

    const bob = stockClient({ name: "Bob" });
    bob.type(0, "bob's offline work ");
    bob.takeOutbox();
    room.connect("b", bob);
    // Bob answered the server's step 1 with his offline edit, and asked for the document.
    expect(bob.text).toBe(alice.text);
    expect(textOf(room.replica.encodeDocument())).toBe(alice.text);
    expect(alice.text).toContain("shared");
    expect(alice.text).toContain("bob's offline work");
    expect(bob.awareness.getStates().get(alice.clientId)).toEqual({ name: "Alice" });
    expect(alice.awareness.getStates().get(bob.clientId)).toEqual({ name: "Bob" });
  });
});

describe("RoomReplica: messages", () => {
  it("a client update is applied, broadcast once as a sync update, and persisted", () => {
    const room = new Harness();
    const alice = stockClient();
    room.connect("a", alice);
    room.connect("b", stockClient());
    const effects = room.replica.receive("a", edit(alice, 0, "hello"), NOW);
    expect(kinds(effects)).toEqual(["broadcast:sync2:except:a"]);
    const [broadcast] = effects;
    if (broadcast?.kind !== "broadcast") throw new Error("unexpected");
    const message = decodeIncomingMessage(broadcast.frame, LIMITS);
    expect(message.type).toBe("sync-update");
    if (message.type !== "sync-update") return;
    expect(textOf(message.update)).toBe("hello");

    const stored = room.storage.load(ROOM);
    expect(stored.log).toHaveLength(1);
    expect(textOf(Y.mergeUpdates(stored.log))).toBe("hello");
    expect(textOf(room.replica.encodeDocument())).toBe("hello");
  });

  it("a duplicate update changes nothing: no broadcast, no write", () => {
    const room = new Harness();
    const alice = stockClient();
    room.connect("a", alice);
    const frame = edit(alice, 0, "once");
    room.send("a", frame);
    const writes = room.storage.writes;
    expect(room.replica.receive("a", frame, NOW)).toEqual([]);
    expect(room.storage.writes).toBe(writes);
  });

  it("sync step 2 from a client is applied and broadcast like an update", () => {
    const room = new Harness();
    room.connect("a", stockClient());
    const source = new Y.Doc();
    source.getText("t").insert(0, "from step 2");
    const effects = room.replica.receive("a", syncStep2Frame(source), NOW);
    expect(kinds(effects)).toEqual(["broadcast:sync2:except:a"]);
    expect(textOf(room.replica.encodeDocument())).toBe("from step 2");
  });

  it("sync step 1 from a client is answered with step 2 to that connection only", () => {
    const room = new Harness();
    const alice = stockClient();
    room.connect("a", alice);
    room.send("a", edit(alice, 0, "abc"));
    room.connect("b", stockClient());

    const late = stockClient();
    const effects = room.replica.receive("b", syncStep1Frame(late.doc), NOW);
    expect(kinds(effects)).toEqual(["send:b:sync1"]);
    const [reply] = effects;
    if (reply?.kind !== "send") throw new Error("unexpected");
    late.receive(reply.frame);
    expect(late.text).toBe("abc");
  });

  it("step 2 answers only what the asker lacks", () => {
    const room = new Harness();
    const alice = stockClient();
    room.connect("a", alice);
    room.send("a", edit(alice, 0, "one "));
    const half = stockClient();
    Y.applyUpdate(half.doc, room.replica.encodeDocument());
    room.send("a", edit(alice, 4, "two"));

    const [full] = room.replica.receive("a", syncStep1Frame(new Y.Doc()), NOW);
    const [diff] = room.replica.receive("a", syncStep1Frame(half.doc), NOW);
    if (full?.kind !== "send" || diff?.kind !== "send") throw new Error("unexpected");
    expect(diff.frame.byteLength).toBeLessThan(full.frame.byteLength);
    half.receive(diff.frame);
    expect(half.text).toBe("one two");
  });

  it("queryAwareness is answered to the asker with every present state but its own", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" });
    const bob = stockClient({ name: "Bob" });
    const carol = stockClient({ name: "Carol" });
    room.connect("a", alice);
    room.connect("b", bob);
    room.connect("c", carol);
    const effects = room.replica.receive("b", queryAwarenessFrame(), NOW);
    expect(kinds(effects)).toEqual(["send:b:awareness"]);
    const [reply] = effects;
    if (reply?.kind !== "send") throw new Error("unexpected");
    expect(awarenessStatesOf(reply.frame)).toEqual(
      new Map([
        [alice.clientId, { name: "Alice" }],
        [carol.clientId, { name: "Carol" }],
      ]),
    );
    // The same resync snapshot as on connect: relay clock + 1, nothing stored.
    const relayClock = (id: ConnectionId): number =>
      room.attachments.get(id)?.clients[0]?.clock ?? -1;
    expect(awarenessEntriesOf(reply.frame).map((e) => e.clock)).toEqual([
      relayClock("a") + 1,
      relayClock("c") + 1,
    ]);
    expect(room.replica.receive("b", queryAwarenessFrame(), NOW)).toEqual(effects);
    // Each asker is left out of its own answer.
    for (const [id, client] of [
      ["a", alice],
      ["c", carol],
    ] as const) {
      const [answer] = room.replica.receive(id, queryAwarenessFrame(), NOW);
      if (answer?.kind !== "send") throw new Error("unexpected");
      const ids = [...awarenessStatesOf(answer.frame).keys()];
      expect(ids).toHaveLength(2);
      expect(ids).not.toContain(client.clientId);
    }
  });

  // Regression: the answer used to include the asker's own entry at relay clock + 1, above the
  // asker's own clock (relay clocks start at the load's floor, far above it), so a stock client
  // adopted it over a newer local state it had not sent yet, and then announced the stale copy.
  it("a queryAwareness answer never rolls the asker's own state back", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" });
    const bob = stockClient({ name: "Bob" });
    room.connect("a", alice);
    room.connect("b", bob);
    const bobsRelayClock = room.attachments.get("b")?.clients[0]?.clock ?? -1;
    bob.awareness.setLocalStateField("typing", true); // in flight: not sent yet
    const bobsClock = ownClock(bob);
    expect(bobsRelayClock + 1).toBeGreaterThan(bobsClock); // what he would have adopted

    room.send("b", queryAwarenessFrame()); // sent after the change, answered before it arrives
    const [answer] = room.delivered.get("b")?.slice(-1) ?? [];
    if (!answer) throw new Error("no answer");
    expect(awarenessEntriesOf(answer).map((e) => e.clientId)).toEqual([alice.clientId]);
    expect(bob.awareness.getLocalState()).toEqual({ name: "Bob", typing: true });
    expect(ownClock(bob)).toBe(bobsClock);

    room.flushClients();
    expect(alice.awareness.getStates().get(bob.clientId)).toEqual({ name: "Bob", typing: true });
    expect(room.replica.awarenessOwners().find((m) => m.clientId === bob.clientId)?.state).toEqual({
      name: "Bob",
      typing: true,
    });
  });

  it("queryAwareness in an empty room is answered with an empty awareness update", () => {
    const replica = open();
    replica.connect(info("a"));
    const [reply] = replica.receive("a", queryAwarenessFrame(), NOW);
    if (reply?.kind !== "send") throw new Error("unexpected");
    expect(awarenessStatesOf(reply.frame).size).toBe(0);
  });

  it("an awareness update is relayed to the others with the relay clock, echoed to the sender with its own, and rewrites its attachment", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" }, 777);
    const bob = stockClient();
    room.connect("a", alice);
    room.connect("b", bob);
    room.delivered.clear();
    const aliceRemote = countRemoteUpdates(alice);
    alice.awareness.setLocalStateField("cursor", { index: 3 });
    const clock = ownClock(alice);
    const json = JSON.stringify({ name: "Alice", cursor: { index: 3 } });
    const [frame] = alice.takeOutbox();
    const effects = room.send("a", frame as Uint8Array);
    expect(kinds(effects)).toEqual([
      "attach:a",
      "broadcast:awareness:except:a",
      "send:a:awareness",
    ]);
    const [attach, relay, echo] = effects;
    if (relay?.kind !== "broadcast" || echo?.kind !== "send" || attach?.kind !== "attach")
      throw new Error("unexpected");
    const [relayed] = awarenessEntriesOf(relay.frame);
    // Her claim on connect was relayed at floor + 2; this change at relay clock + 2.
    const relayClock = floorOfLoad(1) + 4;
    expect(relayed).toEqual({ clientId: 777, clock: relayClock, json });
    expect(relayClock).toBeGreaterThan(clock);
    expect(awarenessEntriesOf(echo.frame)).toEqual([{ clientId: 777, clock, json }]);
    expect(attach.attachment.clients).toEqual([
      { clientId: 777, clock: relayClock, ownerClock: clock, json },
    ]);
    expect(connectionAttachmentSchema.parse(attach.attachment)).toEqual(attach.attachment);

    // Bob got the relay only, Alice her echo only, which her Awareness ignored.
    expect(room.delivered.get("b")).toEqual([relay.frame]);
    expect(room.delivered.get("a")).toEqual([echo.frame]);
    expect(bob.awareness.getStates().get(777)).toEqual({ name: "Alice", cursor: { index: 3 } });
    expect(bob.awareness.meta.get(777)?.clock).toBe(relayClock);
    expect(aliceRemote.count).toBe(0);
    expect(ownClock(alice)).toBe(clock);
    expect(alice.takeOutbox()).toEqual([]);
  });

  // The codec used to reject clocks over 2^48 (relay clocks were owner clock × 4); relay clocks
  // are now the server's own, so any clock is accepted and only comes back in the echo.
  it("an awareness clock of 2^53 - 1 is accepted: relayed at the room's own clock, echoed unchanged", () => {
    const room = new Harness();
    const viewer = stockClient(null, 5);
    const bob = stockClient({ name: "Bob" }, 22);
    room.connect("a", viewer);
    room.connect("b", bob);
    const max = Number.MAX_SAFE_INTEGER;
    const json = '{"name":"Alice"}';
    const effects = room.send("a", rawAwarenessFrame([{ clientId: 11, clock: max, state: json }]));
    expect(kinds(effects)).toEqual([
      "attach:a",
      "broadcast:awareness:except:a",
      "send:a:awareness",
    ]);
    const [attach, relay, echo] = effects;
    if (relay?.kind !== "broadcast" || echo?.kind !== "send" || attach?.kind !== "attach")
      throw new Error("unexpected");
    const relayClock = floorOfLoad(1) + 2; // a claim
    expect(awarenessEntriesOf(relay.frame)).toEqual([{ clientId: 11, clock: relayClock, json }]);
    expect(awarenessEntriesOf(echo.frame)).toEqual([{ clientId: 11, clock: max, json }]);
    expect(attach.attachment.clients).toEqual([
      { clientId: 11, clock: relayClock, ownerClock: max, json },
    ]);
    expect(connectionAttachmentSchema.parse(attach.attachment)).toEqual(attach.attachment);
    expect(bob.awareness.getStates().get(11)).toEqual({ name: "Alice" });
    expect(room.closed.size).toBe(0);
    // The same clock and state again is a duplicate: nothing is sent.
    expect(
      room.replica.receive(
        "a",
        rawAwarenessFrame([{ clientId: 11, clock: max, state: json }]),
        NOW,
      ),
    ).toEqual([]);
  });

  it("an awareness frame the table ignores (a duplicate) sends and writes nothing", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" }, 7);
    room.connect("a", alice);
    room.connect("b", stockClient());
    const frame = awarenessFrame(alice.awareness);
    expect(room.replica.receive("a", frame, NOW)).toEqual([]);
  });

  it("a live connection's clientID cannot be claimed by another connection, even one under its quota", () => {
    const room = new Harness();
    room.connect("a", stockClient({ name: "Alice" }, 1));
    const viewer = stockClient(null, 2);
    room.connect("v", viewer);
    expect(room.attachments.get("v")?.clients).toEqual([]);
    const takeover = rawAwarenessFrame([{ clientId: 1, clock: 1000, state: '{"name":"Mallory"}' }]);
    expect(room.replica.receive("v", takeover, NOW)).toEqual([]);
    expect(
      room.replica.awarenessOwners().map((m) => [m.clientId, m.connectionId, m.state]),
    ).toEqual([[1, "a", { name: "Alice" }]]);
    // The viewer can still claim a clientID of its own.
    const own = rawAwarenessFrame([{ clientId: 2, clock: 1, state: '{"name":"Viewer"}' }]);
    expect(kinds(room.send("v", own))).toEqual([
      "attach:v",
      "broadcast:awareness:except:v",
      "send:v:awareness",
    ]);
  });

  it("an awareness entry for someone else's clientID is ignored (no broadcast)", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" }, 1);
    room.connect("a", alice);
    room.connect("b", stockClient({ name: "Bob" }, 2));
    const spoof = rawAwarenessFrame([{ clientId: 1, clock: 1000, state: "null" }]);
    expect(room.replica.receive("b", spoof, NOW)).toEqual([]);
    expect(room.replica.awarenessOwners().map((m) => m.clientId)).toEqual([1, 2]);
  });

  // Regression: the codec accepts any JSON text whose value is null, such as " null", but the
  // table only treats the exact text "null" as a removal, so " null" used to claim the clientID
  // and show up as a member whose state is null (stock clients, which parse it, see no one).
  it("an awareness state of null written with whitespace counts as null: it lists no member", () => {
    const replica = open();
    replica.connect(info("a"));
    expect(
      replica.receive("a", rawAwarenessFrame([{ clientId: 5, clock: 1, state: " null" }]), NOW),
    ).toEqual([]);
    expect(replica.awarenessOwners()).toEqual([]);
    expect(replica.summary().members).toBe(0);
  });

  it("an owner's null written with whitespace removes its state like a plain null", () => {
    const room = new Harness();
    room.connect("a", stockClient({ name: "Alice" }, 5));
    const bob = stockClient({ name: "Bob" });
    room.connect("b", bob);
    const effects = room.send(
      "a",
      rawAwarenessFrame([{ clientId: 5, clock: 9, state: "\n null\t" }]),
    );
    expect(kinds(effects)).toEqual([
      "attach:a",
      "broadcast:awareness:except:a",
      "send:a:awareness",
    ]);
    const [, relay] = effects;
    if (relay?.kind !== "broadcast") throw new Error("unexpected");
    expect(awarenessEntriesOf(relay.frame)).toEqual([
      { clientId: 5, clock: expect.any(Number), json: "null" },
    ]);
    expect(bob.awareness.getStates().has(5)).toBe(false);
    expect(room.replica.awarenessOwners().map((m) => m.clientId)).toEqual([bob.clientId]);
  });

  it("disconnect broadcasts a null state at relay clock + 1 for the connection's clientIDs, which every peer accepts", () => {
    const room = new Harness();
    // Bob is there first: he gets Alice's relay. Carol comes after: she gets a snapshot, at relay + 1.
    const bob = stockClient({ name: "Bob" });
    room.connect("b", bob);
    const alice = stockClient({ name: "Alice" }, 5);
    room.connect("a", alice);
    const carol = stockClient({ name: "Carol" });
    room.connect("c", carol);
    const relayClock = room.attachments.get("a")?.clients[0]?.clock ?? -1;
    expect(bob.awareness.meta.get(5)?.clock).toBe(relayClock);
    expect(carol.awareness.meta.get(5)?.clock).toBe(relayClock + 1);

    const effects = room.disconnect("a");
    expect(kinds(effects)).toEqual(["broadcast:awareness"]);
    const [broadcast] = effects;
    if (broadcast?.kind !== "broadcast") throw new Error("unexpected");
    expect(decodeIncomingMessage(broadcast.frame, LIMITS)).toEqual({
      type: "awareness",
      entries: [{ clientId: 5, clock: relayClock + 1, json: "null" }],
    });
    // y-protocols accepts a null at an equal clock, so Carol drops Alice too.
    expect(bob.awareness.getStates().has(5)).toBe(false);
    expect(carol.awareness.getStates().has(5)).toBe(false);
    expect(room.replica.connectionCount).toBe(2);
    expect(room.replica.awarenessOwners().map((m) => m.clientId)).toEqual([
      bob.clientId,
      carol.clientId,
    ]);
  });

  it("disconnect of a connection without awareness, or of an unknown one, sends nothing", () => {
    const replica = open();
    replica.connect(info("a"));
    expect(replica.disconnect("a", false, NOW)).toEqual([]);
    expect(replica.disconnect("a", false, NOW)).toEqual([]);
    expect(replica.disconnect("nobody", false, NOW)).toEqual([]);
    expect(replica.connectionCount).toBe(0);
  });

  it("frames from a connection the room does not know are ignored", () => {
    const replica = open();
    const client = stockClient();
    const frame = edit(client, 0, "ghost");
    expect(replica.receive("ghost", frame, NOW)).toEqual([]);
    expect(textOf(replica.encodeDocument())).toBe("");
  });

  it("two stock clients editing concurrently converge through the replica", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" });
    const bob = stockClient({ name: "Bob" });
    room.connect("a", alice);
    room.connect("b", bob);
    alice.type(0, "AAA");
    bob.type(0, "BBB");
    room.flushClients();
    alice.type(1, "x");
    bob.doc.getText("t").delete(0, 1);
    room.flushClients();
    expect(alice.text).toBe(bob.text);
    expect(alice.text).toHaveLength(6);
    expect(textOf(room.replica.encodeDocument())).toBe(alice.text);
  });
});

describe("RoomReplica: bad frames", () => {
  function truncatedUpdate(): Uint8Array {
    const doc = new Y.Doc();
    doc.getText("t").insert(0, "a valid update that will be cut short");
    doc.getText("t").delete(2, 6); // so the update carries a delete set too
    const update = Y.encodeStateAsUpdate(doc);
    return update.subarray(0, update.byteLength - 3);
  }

  function randomBytes(length: number, seed: number): Uint8Array {
    const out = new Uint8Array(length);
    let s = seed;
    for (let i = 0; i < length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = s >>> 24;
    }
    return out;
  }

  /**
   * A Yjs update that decodes, but that Yjs cannot integrate: its second item's origin is its
   * own client at a clock past its own, and `Y.applyUpdate` throws lib0's "Unexpected case".
   */
  function unintegrableUpdate(): Uint8Array {
    return buildFrame((e) => {
      for (const v of [1, 2, 7, 0]) encoding.writeVarUint(e, v); // 1 client, 2 structs, client 7, clock 0
      encoding.writeUint8(e, 4); // a string item without origins...
      encoding.writeVarUint(e, 1); // ...in the root type
      encoding.writeVarString(e, "t");
      encoding.writeVarString(e, "ab");
      encoding.writeUint8(e, 0x84); // a string item with a left origin...
      encoding.writeVarUint(e, 7);
      encoding.writeVarUint(e, 5); // ...at its own client, clock 5
      encoding.writeVarString(e, "c");
      encoding.writeVarUint(e, 0); // empty delete set
    });
  }

  const cases: Array<[string, number, () => Uint8Array]> = [
    ["an empty frame", 1007, () => new Uint8Array(0)],
    ["an unknown message type", 1003, () => Uint8Array.of(9)],
    ["an auth message", 1003, () => Uint8Array.of(2, 0, 0)],
    ["a frame over maxFrameBytes", 1009, () => new Uint8Array(LIMITS.maxFrameBytes + 1)],
    [
      "awareness with invalid JSON",
      1007,
      () => rawAwarenessFrame([{ clientId: 1, clock: 1, state: "{" }]),
    ],
    [
      "awareness over maxAwarenessStateBytes",
      1009,
      () =>
        rawAwarenessFrame([
          { clientId: 1, clock: 1, state: JSON.stringify({ x: "y".repeat(2000) }) },
        ]),
    ],
    ["a valid Yjs update truncated by a few bytes", 1007, () => syncUpdateFrame(truncatedUpdate())],
    ["random bytes as a Yjs update", 1007, () => syncUpdateFrame(randomBytes(64, 42))],
    ["random bytes as sync step 2", 1007, () => rawSyncFrame(1, randomBytes(40, 7))],
    ["an invalid state vector in sync step 1", 1007, () => rawSyncFrame(0, Uint8Array.of(5))],
    [
      "trailing bytes after a sync update",
      1007,
      () => Uint8Array.of(...syncUpdateFrame(Uint8Array.of(0, 0)), 0),
    ],
  ];

  /** A sync frame around arbitrary payload bytes (y-protocols' writers need a real document). */
  function rawSyncFrame(step: number, payload: Uint8Array): Uint8Array {
    return buildFrame((e) => {
      encoding.writeVarUint(e, MESSAGE_SYNC);
      encoding.writeVarUint(e, step);
      encoding.writeVarUint8Array(e, payload);
    });
  }

  it("the malformed updates used below really are rejected by Yjs' own decoder", () => {
    expect(() => Y.decodeUpdate(truncatedUpdate())).toThrow();
    expect(() => Y.decodeUpdate(randomBytes(64, 42))).toThrow();
    expect(() => Y.decodeUpdate(randomBytes(40, 7))).toThrow();
  });

  it("the unintegrable update decodes, and only Y.applyUpdate rejects it", () => {
    expect(Y.decodeUpdate(unintegrableUpdate()).structs).toHaveLength(2);
    expect(() => Y.applyUpdate(new Y.Doc(), unintegrableUpdate())).toThrow("Unexpected case");
  });

  it.each(cases)(
    "%s closes the sender with %i, drops its awareness, and leaves the document and the others alone",
    (_name, code, makeFrame) => {
      const room = new Harness();
      const alice = stockClient({ name: "Alice" }, 11);
      const bob = stockClient({ name: "Bob" }, 22);
      room.connect("a", alice);
      room.connect("b", bob);
      room.send("a", edit(alice, 0, "before "));
      const docBefore = room.replica.encodeDocument();
      const writesBefore = room.storage.writes;

      const effects = room.send("a", makeFrame());
      expect(kinds(effects)).toEqual(["close:a", "broadcast:awareness"]);
      const [close, removal] = effects;
      if (close?.kind !== "close" || removal?.kind !== "broadcast") throw new Error("unexpected");
      expect(close.code).toBe(code);
      expect(close.reason.length).toBeGreaterThan(0);
      expect(new TextEncoder().encode(close.reason).byteLength).toBeLessThanOrEqual(123);
      expect(awarenessStatesOf(removal.frame)).toEqual(new Map([[11, null]]));

      expect(room.replica.encodeDocument()).toEqual(docBefore);
      expect(room.storage.writes).toBe(writesBefore);
      expect(room.replica.connectionCount).toBe(1);
      expect(room.replica.awarenessOwners().map((m) => m.clientId)).toEqual([22]);
      expect(bob.awareness.getStates().has(11)).toBe(false);

      // The closed connection is gone: anything more it sends is ignored.
      expect(room.replica.receive("a", edit(alice, 0, "after close "), NOW)).toEqual([]);
      // The other connection still works.
      const bobEffects = room.send("b", edit(bob, 0, "bob "));
      expect(kinds(bobEffects)).toEqual(["broadcast:sync2:except:b"]);
      expect(textOf(room.replica.encodeDocument())).toBe("bob before ");
    },
  );

  // Regression: Y.applyUpdate throws a plain Error for this update, which receive() took for a
  // storage failure: it failed the whole room (every socket closed with 1011, the room
  // unloaded), and any participant could do it again on every reconnect. Unlike the frames
  // above, Yjs has integrated the update's first item before it throws, and that part was
  // stored and broadcast like any update: it stays, so memory still matches storage.
  it("an update that depends on content the room lacks is not applied: nothing stored or broadcast, and its sender is asked once to resync", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" }, 11);
    const bob = stockClient({ name: "Bob" }, 22);
    room.connect("a", alice);
    room.connect("b", bob);
    room.send("a", edit(alice, 0, "before "));
    const writesBefore = room.storage.writes;
    const before = room.replica.encodeDocument();
    room.delivered.clear();

    // Its first struct would integrate; its second has a left origin (7:5) nobody has. Yjs
    // would keep it pending (and a pending struct poisons later syncs): it is dropped whole.
    const effects = room.replica.receive("a", syncUpdateFrame(unintegrableUpdate()), NOW);
    expect(kinds(effects)).toEqual(["send:a:sync0"]);
    expect(room.failed).toBeNull();
    expect(room.replica.encodeDocument()).toEqual(before);
    expect(room.storage.writes).toBe(writesBefore);
    expect(bob.text).toBe("before ");
    // Asked once: more such frames before one applies ask nothing more (no amplification).
    expect(room.replica.receive("a", syncUpdateFrame(unintegrableUpdate()), NOW)).toEqual([]);

    // The connection still works, and so does the other one; storage keeps up.
    expect(kinds(room.send("a", edit(alice, 0, "alice ")))).toEqual(["broadcast:sync2:except:a"]);
    expect(kinds(room.send("b", edit(bob, 0, "bob ")))).toEqual(["broadcast:sync2:except:b"]);
    expect(open(room.storage).encodeDocument()).toEqual(room.replica.encodeDocument());
  });

  it("an update with a gap in a client's clocks waits for the client's resync, then everything lands", () => {
    const room = new Harness();
    const alice = stockClient({}, 11);
    const watcher = stockClient({}, 44);
    room.connect("a", alice);
    room.connect("w", watcher);
    const first = edit(alice, 0, "one");
    const second = edit(alice, 3, "two");
    // The second update alone skips clocks 0-2 (the first was lost, say, with an old shard):
    // the server asks with its state vector, and the stock client's step 2 answer carries both.
    const gap = room.send("a", second);
    expect(kinds(gap)).toEqual(["send:a:sync0"]);
    expect(textOf(room.replica.encodeDocument())).toBe("");
    expect(watcher.text).toBe("");
    // The step 1 reached alice (the harness delivers it); her step 2 answer carries both edits.
    const [reply] = alice.takeOutbox().filter((f) => frameKind(f).type === MESSAGE_SYNC);
    expect(kinds(room.send("a", reply as Uint8Array))).toEqual(["broadcast:sync2:except:a"]);
    expect(textOf(room.replica.encodeDocument())).toBe("onetwo");
    expect(watcher.text).toBe("onetwo");
    // A repeat of known content is ignored.
    expect(room.send("a", first)).toEqual([]);
  });

  it("a truncated update names the problem in the close reason", () => {
    const replica = open();
    replica.connect(info("a"));
    const [close] = replica.receive("a", syncUpdateFrame(truncatedUpdate()), NOW);
    expect(close).toEqual({
      kind: "close",
      connectionId: "a",
      code: 1007,
      reason: "malformed frame: invalid Yjs update",
    });
  });

  it("a storage failure while applying an update fails the whole room: one fail-room effect, nothing sent to anyone", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" }, 11);
    const bob = stockClient({ name: "Bob" }, 22);
    room.connect("a", alice);
    room.connect("b", bob);
    room.send("a", edit(alice, 0, "kept"));
    const frame = edit(alice, 4, " lost");
    const append = room.storage.append;
    room.storage.append = () => {
      throw new Error("disk full");
    };
    room.delivered.clear();
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    let effects: RoomEffect[];
    try {
      effects = room.send("a", frame);
      expect(errors).toHaveBeenCalledTimes(1);
    } finally {
      errors.mockRestore();
    }
    expect(effects).toEqual([{ kind: "fail-room", reason: "internal error; reconnect to resync" }]);
    // No frame at all: neither the unstored update nor an awareness removal, to anyone.
    expect(room.delivered.size).toBe(0);
    expect(bob.text).toBe("kept");
    expect(bob.awareness.getStates().get(11)).toEqual({ name: "Alice" });
    // The shell closes every socket with 1011.
    expect(room.failed).toBe("internal error; reconnect to resync");
    expect([...room.closed]).toEqual([
      ["a", { code: 1011, reason: "internal error; reconnect to resync" }],
      ["b", { code: 1011, reason: "internal error; reconnect to resync" }],
    ]);
    expect(new TextEncoder().encode(room.failed ?? "").byteLength).toBeLessThanOrEqual(123);
    // Memory took the update but storage did not: that is why the room must be unloaded.
    expect(textOf(room.replica.encodeDocument())).toBe("kept lost");
    expect(textOf(Y.mergeUpdates(room.storage.load(ROOM).log))).toBe("kept");

    // The room reloads from storage; the clients reconnect and resync: nothing is lost.
    room.storage.append = append;
    const reloaded = new Harness(LIMITS, room.storage);
    reloaded.connect("a2", alice);
    reloaded.connect("b2", bob);
    expect(textOf(reloaded.replica.encodeDocument())).toBe("kept lost");
    expect(textOf(Y.mergeUpdates(reloaded.storage.load(ROOM).log))).toBe("kept lost");
    expect(bob.text).toBe("kept lost");
  });

  it("a storage failure fails the room whichever connection sent the update, and only then", () => {
    const storage = new MemoryRoomStorage();
    const replica = open(storage);
    replica.connect(info("a"));
    replica.connect(info("b"));
    const client = stockClient();
    const first = edit(client, 0, "x");
    const second = edit(client, 1, "y");
    expect(kinds(replica.receive("b", first, NOW))).toEqual(["broadcast:sync2:except:b"]);
    storage.append = () => {
      throw new Error("disk full");
    };
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      expect(replica.receive("b", second, NOW)).toEqual([
        { kind: "fail-room", reason: "internal error; reconnect to resync" },
      ]);
      // A frame that writes nothing (sync step 1, awareness) does not touch storage.
      expect(kinds(replica.receive("a", syncStep1Frame(new Y.Doc()), NOW))).toEqual([
        "send:a:sync1",
      ]);
      expect(errors).toHaveBeenCalledTimes(1);
    } finally {
      errors.mockRestore();
    }
  });

  // Regression: the fuzzer finds updates that decode but that Yjs cannot integrate among a few
  // mutated bytes of a valid one; they used to fail the whole room.
  it("no malformed frame fails the room: each one closes (or asks to resync) only its sender, and memory keeps matching storage (fuzz)", () => {
    const doc = new Y.Doc();
    doc.clientID = 1234;
    doc.getText("t").insert(0, "some text to mutate");
    doc.getMap("m").set("k", { nested: [1, 2, 3] });
    doc.getText("t").delete(3, 4);
    const awareness = stockClient({ name: "Fuzz", cursor: { a: 1 } }, 99);
    const seeds = [
      syncUpdateFrame(Y.encodeStateAsUpdate(doc)),
      syncStep2Frame(doc),
      syncStep1Frame(doc),
      awarenessFrame(awareness.awareness),
      queryAwarenessFrame(),
    ];
    let s = 12345;
    const random = (n: number): number => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return (s >>> 8) % n;
    };
    const storage = new MemoryRoomStorage();
    const replica = open(storage);
    replica.connect(info("bystander"));
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    let closes = 0;
    let unintegrable = 0;
    try {
      for (let i = 0; i < 2000; i++) {
        const seed = seeds[random(seeds.length)] as Uint8Array;
        const frame = seed.slice(0, seed.byteLength - random(3));
        for (let flips = random(3) + 1; flips > 0; flips--) {
          frame[random(frame.byteLength)] = random(256);
        }
        const id = `c${i}`;
        replica.connect(info(id));
        const effects = replica.receive(id, frame, NOW);
        const context = `frame ${Array.from(frame).join(",")}`;
        expect(kinds(effects), context).not.toContain("fail-room");
        for (const effect of effects) {
          // An update building on content the room lacks asks its sender (only) to resync.
          if (effect.kind === "send" && frameKind(effect.frame).step === 0) {
            expect(effect.connectionId, context).toBe(id);
            unintegrable++;
          }
          if (effect.kind !== "close") continue;
          closes++;
          expect(effect.connectionId, context).toBe(id);
          expect([1003, 1007, 1009], context).toContain(effect.code);
        }
        replica.disconnect(id, false, NOW);
      }
      expect(errors).not.toHaveBeenCalled();
    } finally {
      errors.mockRestore();
    }
    expect(closes).toBeGreaterThan(100);
    expect(unintegrable).toBeGreaterThan(0);
    expect(replica.connectionCount).toBe(1); // the bystander
    // Memory integrated exactly what storage holds: both announce the same state vector in their
    // sync step 1, and, since an update with a missing dependency is dropped rather than kept
    // pending, both encode the same document.
    const stateVectorOf = (room: RoomReplica): Map<number, number> => {
      const [step1] = room.connect(info("probe"));
      if (step1?.kind !== "send") throw new Error("no sync step 1");
      const message = decodeIncomingMessage(step1.frame, LIMITS);
      if (message.type !== "sync-step1") throw new Error(`unexpected ${message.type}`);
      return Y.decodeStateVector(message.stateVector);
    };
    const reopened = open(storage);
    const stored = stateVectorOf(reopened);
    expect(stored.size).toBeGreaterThan(0);
    expect(stateVectorOf(replica)).toEqual(stored);
    expect(textOf(replica.encodeDocument())).toBe(textOf(reopened.encodeDocument()));
  });
});

describe("RoomReplica: storage", () => {
  it("reopening a replica on the same storage yields the same document (restart)", () => {
    const room = new Harness();
    const alice = stockClient();
    room.connect("a", alice);
    for (const word of ["one ", "two ", "three"])
      room.send("a", edit(alice, alice.text.length, word));
    alice.doc.getText("t").delete(0, 4);
    room.flushClients();
    const before = room.replica.encodeDocument();

    const reopened = open(room.storage);
    expect(textOf(reopened.encodeDocument())).toBe("two three");
    expect(Y.encodeStateVector(docOf(reopened.encodeDocument()))).toEqual(
      Y.encodeStateVector(docOf(before)),
    );
    expect(reopened.connectionCount).toBe(0);
    expect(reopened.awarenessOwners()).toEqual([]);
  });

  it("each load of a room relays claims above the floor of the millisecond it was loaded in", () => {
    const storage = new MemoryRoomStorage();
    for (const seconds of [1, 2, 3]) {
      const room = new Harness(LIMITS, storage);
      room.connect("a", stockClient({ name: "Alice" }, 1));
      expect(room.attachments.get("a")?.clients).toEqual([
        { clientId: 1, clock: floorOfLoad(seconds) + 2, ownerClock: 1, json: '{"name":"Alice"}' },
      ]);
    }
    // The floor comes from the time passed in, not from the storage: any room, any storage.
    const { room: elsewhere } = RoomReplica.open(
      "team:doc-2",
      depsOf(new MemoryRoomStorage(), LIMITS),
      42_999,
    );
    toDestroy.push(elsewhere);
    const effects = elsewhere.connect({
      connectionId: "x",
      region: "wnam",
      joinedAt: 0,
      identity: EVERYONE,
    });
    expect(effects.map((effect) => effect.kind)).toEqual(["send", "attach"]);
    const claim = elsewhere.receive(
      "x",
      OutgoingMessage.awareness([{ clientId: 9, clock: 1, json: "{}" }]),
      NOW,
    );
    const relay = claim.find((effect) => effect.kind === "broadcast");
    expect(relay && awarenessEntriesOf(relay.frame)[0]?.clock).toBe(
      42_999 * CLOCK_STEPS_PER_MS + 2,
    );
  });

  it("loading from storage writes nothing back and broadcasts nothing", () => {
    const room = new Harness();
    const alice = stockClient();
    room.connect("a", alice);
    room.send("a", edit(alice, 0, "persisted"));
    const writes = room.storage.writes;
    const reopened = open(room.storage);
    expect(room.storage.writes).toBe(writes);
    expect(kinds(reopened.connect(info("x")))).toEqual(["send:x:sync0", "attach:x"]);
  });

  it("with compactAfterUpdates = 5, 12 updates leave a snapshot and a log of 2", () => {
    const limits = { ...LIMITS, compactAfterUpdates: 5 };
    const room = new Harness(limits);
    const alice = stockClient();
    room.connect("a", alice);
    for (let i = 0; i < 12; i++) room.send("a", edit(alice, alice.text.length, `${i},`));
    const expected = Array.from({ length: 12 }, (_, i) => `${i},`).join("");
    expect(alice.text).toBe(expected);

    const stored = room.storage.load(ROOM);
    expect(stored.snapshot).not.toBeNull();
    expect(stored.log).toHaveLength(2);
    expect(textOf(stored.snapshot as Uint8Array)).toBe(
      expected.slice(0, "0,1,2,3,4,5,6,7,8,9,".length),
    );
    const storage = room.replica.storageStats();
    expect(storage.compactions).toBe(2);
    expect(storage.logUpdates).toBe(2);
    expect(storage.snapshotBytes).toBe(stored.snapshot?.byteLength);

    const reopened = open(room.storage, limits);
    expect(textOf(reopened.encodeDocument())).toBe(expected);
  });

  it("compacts by bytes as well as by count", () => {
    const limits = { ...LIMITS, compactAfterUpdates: 1000, compactAfterBytes: 1024 };
    const room = new Harness(limits);
    const alice = stockClient();
    room.connect("a", alice);
    room.send("a", edit(alice, 0, "x".repeat(600)));
    expect(room.storage.load(ROOM).snapshot).toBeNull();
    room.send("a", edit(alice, 600, "y".repeat(600)));
    const stored = room.storage.load(ROOM);
    expect(stored.snapshot).not.toBeNull();
    expect(stored.log).toHaveLength(0);
    expect(textOf(open(room.storage, limits).encodeDocument())).toBe(alice.text);
  });

  it("approximateBytes follows the stored bytes", () => {
    const room = new Harness();
    expect(room.replica.approximateBytes).toBe(0);
    const alice = stockClient();
    room.connect("a", alice);
    room.send("a", edit(alice, 0, "z".repeat(500)));
    expect(room.replica.approximateBytes).toBeGreaterThan(500);
    expect(open(room.storage).approximateBytes).toBe(room.replica.approximateBytes);
  });
});

function docOf(update: Uint8Array): Y.Doc {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  return doc;
}

describe("RoomReplica: hibernation, queries", () => {
  it("restore(attachment) rebuilds members() and the present awareness without sending anything", () => {
    const room = new Harness();
    room.connect("a", stockClient({ name: "Alice" }, 1), 100);
    room.connect("b", stockClient({ name: "Bob" }, 2), 200);
    // Carol hides her presence after joining: she keeps owning clientID 3, with a null state.
    const carol = stockClient({}, 3);
    room.connect("c", carol, 300);
    carol.awareness.setLocalState(null);
    room.flushClients();
    expect(room.attachments.get("c")?.clients).toEqual([
      { clientId: 3, clock: expect.any(Number), ownerClock: ownClock(carol), json: "null" },
    ]);
    const members = room.replica.awarenessOwners();
    const [queryBefore] = room.replica.receive("c", queryAwarenessFrame(), NOW);

    const woken = open(
      room.storage,
      LIMITS,
      ["a", "b", "c"].map((id) => {
        const attachment = room.attachments.get(id);
        expect(attachment).toBeDefined();
        // What the shell stores must survive JSON and the schema.
        return roundTrip(attachment);
      }),
    );
    expect(woken.connectionCount).toBe(3);
    expect(woken.awarenessOwners()).toEqual(members);
    const [queryAfter] = woken.receive("c", queryAwarenessFrame(), NOW);
    if (queryBefore?.kind !== "send" || queryAfter?.kind !== "send") throw new Error("unexpected");
    expect(queryAfter.frame).toEqual(queryBefore.frame);

    // The owners' own clocks survived too: a duplicate is still a no-op, a renewal is relayed.
    const bobsAttachment = room.attachments.get("b");
    const bobsEntry = bobsAttachment?.clients[0];
    if (!bobsEntry) throw new Error("no attachment for b");
    const bobsFrame = (clock: number): Uint8Array =>
      rawAwarenessFrame([{ clientId: 2, clock, state: bobsEntry.json }]);
    expect(woken.receive("b", bobsFrame(bobsEntry.ownerClock), NOW)).toEqual([]);
    const renewal = woken.receive("b", bobsFrame(bobsEntry.ownerClock + 1), NOW);
    expect(kinds(renewal)).toEqual([
      "attach:b",
      "broadcast:awareness:except:b",
      "send:b:awareness",
    ]);
    const [, renewalRelay, renewalEcho] = renewal;
    if (renewalRelay?.kind !== "broadcast" || renewalEcho?.kind !== "send")
      throw new Error("unexpected");
    // Relay clock + 2: above the + 1 a snapshot handed out, though this load's floor is higher.
    expect(awarenessEntriesOf(renewalRelay.frame)[0]?.clock).toBe(bobsEntry.clock + 2);
    expect(bobsEntry.clock).toBe(floorOfLoad(1) + 2); // his claim, on the first load
    expect(awarenessEntriesOf(renewalEcho.frame)[0]?.clock).toBe(bobsEntry.ownerClock + 1);
    // Nobody can claim Carol's hidden clientID while her socket is open.
    const claim = rawAwarenessFrame([{ clientId: 3, clock: 50, state: "{}" }]);
    expect(woken.receive("b", claim, NOW)).toEqual([]);

    // Clocks survived: removal after waking is still above what clients have seen.
    const [removal] = woken.disconnect("a", false, NOW);
    if (removal?.kind !== "broadcast") throw new Error("unexpected");
    const alicesClock = room.attachments.get("a")?.clients[0]?.clock ?? -1;
    expect(decodeIncomingMessage(removal.frame, LIMITS)).toEqual({
      type: "awareness",
      entries: [{ clientId: 1, clock: alicesClock + 1, json: "null" }],
    });
  });

  // Regression: relay clocks used to be counted (+ 2 a change), so they ran ahead of the owner's
  // own clock by about one per change. Released clientIDs live only in memory, so once the
  // table was lost (hibernation, as here; a restart or a fail-room reload) a returning client
  // was claimed at its own clock + 1, far below the removal clock its peers kept: they ignored
  // it for its next ~N/2 changes or renewals (15 s each), y-websocket#122 again. Each load of
  // the room is loaded again, later, and its floor is above every clock an earlier load
  // relayed, so a rebuilt table relays the returning client above the removal without having
  // stored it.
  it("a client that left before the shard hibernated is seen by the others at once when it comes back (y-websocket#122)", () => {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" }, 1);
    const bob = stockClient({ name: "Bob" }, 2);
    room.connect("a", alice);
    room.connect("b", bob);
    for (let i = 0; i < 10; i++) {
      alice.awareness.setLocalStateField("cursor", i);
      room.flushClients();
    }
    room.disconnect("a");
    // Alice's provider drops the others' states when its socket closes (and keeps their clocks).
    awarenessProtocol.removeAwarenessStates(alice.awareness, [bob.clientId], "closed");
    alice.takeOutbox();
    expect(bob.awareness.getStates().has(1)).toBe(false);
    const removalClock = bob.awareness.meta.get(1)?.clock ?? Number.POSITIVE_INFINITY;
    // Her claim (floor + 2), ten changes (+ 2 each), then the removal (+ 1).
    expect(removalClock).toBe(floorOfLoad(1) + 2 + 10 * 2 + 1);
    const alicesClock = ownClock(alice);
    expect(alicesClock).toBeLessThan(removalClock); // her own clock alone would be ignored

    // The shard hibernates: only the open sockets' attachments survive.
    const attachment = room.attachments.get("b");
    if (!attachment) throw new Error("no attachment for b");
    const woken = new Harness(LIMITS, room.storage, [[bob, roundTrip(attachment)]]); // the room's second load
    const bobsUpdates = countRemoteUpdates(bob);
    woken.connect("a2", alice);
    expect(alice.awareness.getStates().get(bob.clientId)).toEqual({ name: "Bob" });
    expect(woken.replica.awarenessOwners().map((m) => [m.clientId, m.connectionId])).toEqual([
      [2, "b"],
      [1, "a2"],
    ]);
    // Bob sees her at once, from her re-announce alone: no change or renewal of hers needed.
    expect(ownClock(alice)).toBe(alicesClock);
    expect(bobsUpdates.count).toBe(1);
    expect(bob.awareness.getStates().get(1)).toEqual({ name: "Alice", cursor: 9 });
    // A claim in the second load: its floor + 2, above every clock the first load relayed.
    expect(bob.awareness.meta.get(1)?.clock).toBe(floorOfLoad(2) + 2);
    expect(floorOfLoad(2) + 2).toBeGreaterThan(removalClock);
  });

  /**
   * A client claims its clientID and leaves without changing its state (less than one 15 s
   * renewal after announcing itself): its peers keep the removal clock, claim + 1, the highest
   * clock this load handed out for her. Her claim on this first load is at floor + 2.
   */
  function claimAndLeave(): {
    room: Harness;
    alice: StockClient;
    bob: StockClient;
    removalClock: number;
  } {
    const room = new Harness();
    const alice = stockClient({ name: "Alice" }, 1);
    const bob = stockClient({ name: "Bob" }, 2);
    room.connect("a", alice);
    room.connect("b", bob);
    expect(bob.awareness.getStates().get(1)).toEqual({ name: "Alice" });
    // Bob joined after her claim (floor + 2): his connect snapshot carried it at + 1.
    expect(room.attachments.get("a")?.clients[0]?.clock).toBe(floorOfLoad(1) + 2);
    expect(bob.awareness.meta.get(1)?.clock).toBe(floorOfLoad(1) + 3);
    room.disconnect("a"); // no change of hers since her claim
    awarenessProtocol.removeAwarenessStates(alice.awareness, [bob.clientId], "closed");
    alice.takeOutbox();
    expect(bob.awareness.getStates().has(1)).toBe(false);
    const removalClock = bob.awareness.meta.get(1)?.clock ?? Number.POSITIVE_INFINITY;
    expect(removalClock).toBe(floorOfLoad(1) + 3);
    return { room, alice, bob, removalClock };
  }

  // Regression: with relay clocks derived from the owner's clock (× 4, a claim × 4 + 2), a
  // client that claimed and left without changing was claimed again, by a table that had lost
  // its released entry, at the very clock of its first claim: below the removal its peers kept
  // (claim + 1), so they ignored it until its next renewal, y-websocket#122 again. The next
  // load's floor is above every clock this load relayed, whatever the client did.
  it("a client that left right after announcing itself, before the shard hibernated, is seen by the others at once when it comes back (y-websocket#122)", () => {
    const { room, alice, bob, removalClock } = claimAndLeave();
    const alicesClock = ownClock(alice);

    const attachment = room.attachments.get("b");
    if (!attachment) throw new Error("no attachment for b");
    const woken = new Harness(LIMITS, room.storage, [[bob, roundTrip(attachment)]]); // the room's second load
    const bobsUpdates = countRemoteUpdates(bob);
    woken.connect("a2", alice);
    expect(woken.replica.awarenessOwners().map((m) => [m.clientId, m.connectionId])).toEqual([
      [2, "b"],
      [1, "a2"],
    ]);
    expect(bobsUpdates.count).toBe(1);
    expect(bob.awareness.getStates().get(1)).toEqual({ name: "Alice" });
    expect(bob.awareness.meta.get(1)?.clock).toBe(floorOfLoad(2) + 2);
    expect(floorOfLoad(2) + 2).toBeGreaterThan(removalClock);
    // Her echo carried her own clock: she adopted nothing.
    expect(ownClock(alice)).toBe(alicesClock);
    expect(alice.awareness.getStates().get(bob.clientId)).toEqual({ name: "Bob" });
  });

  it("a client that left right after announcing itself, before the shard restarted, is seen at once by a peer that reconnected first (y-websocket#122)", () => {
    const { room, alice, bob, removalClock } = claimAndLeave();
    const alicesClock = ownClock(alice);

    // The shard restarts: every socket closes without a word, and Bob's provider drops the
    // others' states (none left) while it keeps their clocks, Alice's removal included.
    awarenessProtocol.removeAwarenessStates(
      bob.awareness,
      [...bob.awareness.getStates().keys()].filter((id) => id !== bob.clientId),
      "closed",
    );
    bob.takeOutbox();
    expect(bob.awareness.meta.get(1)?.clock).toBe(removalClock);
    const restarted = new Harness(LIMITS, room.storage); // the room's second load
    restarted.connect("b2", bob);
    const bobsUpdates = countRemoteUpdates(bob);
    restarted.connect("a2", alice);
    expect(restarted.replica.awarenessOwners().map((m) => [m.clientId, m.connectionId])).toEqual([
      [2, "b2"],
      [1, "a2"],
    ]);
    expect(bobsUpdates.count).toBe(1);
    expect(bob.awareness.getStates().get(1)).toEqual({ name: "Alice" });
    expect(bob.awareness.meta.get(1)?.clock).toBe(floorOfLoad(2) + 2);
    expect(floorOfLoad(2) + 2).toBeGreaterThan(removalClock);
    // Alice sees Bob at once too (the connect snapshot: his claim + 1), and adopted nothing.
    expect(alice.awareness.getStates().get(bob.clientId)).toEqual({ name: "Bob" });
    expect(alice.awareness.meta.get(bob.clientId)?.clock).toBe(floorOfLoad(2) + 3);
    expect(ownClock(alice)).toBe(alicesClock);
  });

  it("members() joins each present state with its connection's info", () => {
    const room = new Harness();
    room.connect("a", stockClient({ name: "Alice", color: "#f00" }, 1), 111);
    room.connect("b", stockClient({ name: "Bob" }, 2), 222);
    // Carol hides her presence after joining; Dave never had any (a read-only viewer: his
    // relays of the others' states used to take their clientIDs over, in a loop).
    const carol = stockClient({}, 3);
    room.connect("c", carol, 333);
    carol.awareness.setLocalState(null);
    room.connect("d", stockClient(null, 4), 444);
    room.flushClients();
    expect(room.replica.awarenessOwners()).toEqual([
      {
        clientId: 1,
        state: { name: "Alice", color: "#f00" },
        userId: EVERYONE.userId,
        connectionId: "a",
        region: "weur",
        joinedAt: 111,
      },
      {
        clientId: 2,
        state: { name: "Bob" },
        userId: EVERYONE.userId,
        connectionId: "b",
        region: "weur",
        joinedAt: 222,
      },
    ]);
    const summary = room.replica.summary();
    expect(summary.connections).toBe(4);
    expect(summary.members).toBe(2);
  });

  it("encodeDocument(stateVector) returns only the diff", () => {
    const room = new Harness();
    const alice = stockClient();
    room.connect("a", alice);
    room.send("a", edit(alice, 0, "x".repeat(200)));
    const reader = docOf(room.replica.encodeDocument());
    room.send("a", edit(alice, 200, "tail"));

    const full = room.replica.encodeDocument();
    const diff = room.replica.encodeDocument(Y.encodeStateVector(reader));
    expect(diff.byteLength).toBeLessThan(full.byteLength / 4);
    Y.applyUpdate(reader, diff);
    expect(reader.getText("t").toString()).toBe(`${"x".repeat(200)}tail`);

    const nothing = room.replica.encodeDocument(Y.encodeStateVector(reader));
    expect(Y.decodeUpdate(nothing).structs).toEqual([]);
    expect(room.replica.summary().documentBytes).toBe(full.byteLength);
  });

  it("encodeDocument with a malformed state vector throws a ProtocolError", () => {
    const replica = open();
    expect(() => replica.encodeDocument(Uint8Array.of(5))).toThrow(ProtocolError);
  });

  it("the awareness a new connection receives is what a stock Awareness can apply", () => {
    const room = new Harness();
    room.connect("a", stockClient({ name: "Ünïcødé 🎉" }, 9));
    const effects = room.replica.connect(info("z"));
    const awareness = effects.find((e) => e.kind === "send" && frameKind(e.frame).type === 1);
    if (awareness?.kind !== "send") throw new Error("no awareness sent");
    const viewer = stockClient();
    awarenessProtocol.applyAwarenessUpdate(
      viewer.awareness,
      awarenessPayloadOf(awareness.frame),
      "server",
    );
    expect(viewer.awareness.getStates().get(9)).toEqual({ name: "Ünïcødé 🎉" });
  });
});

describe("RoomReplica.reject", () => {
  it("closes only that connection with the given code, removes its awareness, and ignores an unknown one", () => {
    const replica = open();
    replica.connect(info("a"));
    replica.connect(info("b"));
    replica.receive(
      "a",
      OutgoingMessage.awareness([{ clientId: 5, clock: 1, json: '{"name":"A"}' }]),
      NOW,
    );
    const effects = replica.reject("a", 1003, "text frames are not part of the protocol", NOW);
    expect(effects[0]).toEqual({
      kind: "close",
      connectionId: "a",
      code: 1003,
      reason: "text frames are not part of the protocol",
    });
    const removal = effects[1];
    if (removal?.kind !== "broadcast") throw new Error("expected the removal broadcast");
    expect(awarenessEntriesOf(removal.frame)).toEqual([
      expect.objectContaining({ clientId: 5, json: "null" }),
    ]);
    expect(replica.connectionCount).toBe(1);
    expect(replica.reject("a", 1003, "again", NOW)).toEqual([]);
  });
});

describe("RoomReplica rights", () => {
  const READER: ConnectionIdentity = { userId: "reader", rights: ["read"], expiresAt: null };

  it("refuses an update from a connection without write: auth message, then 1008, nothing applied", () => {
    const replica = open();
    replica.connect(info("w"));
    replica.connect(info("r", 1000, READER));
    const source = new Y.Doc();
    let update: Uint8Array = new Uint8Array();
    source.on("update", (u: Uint8Array) => {
      update = u;
    });
    source.getText("t").insert(0, "not allowed");
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 0);
    encoding.writeVarUint(encoder, 2);
    encoding.writeVarUint8Array(encoder, update);
    const before = replica.encodeDocument();
    const effects = replica.receive("r", encoding.toUint8Array(encoder), NOW);
    expect(effects.map((e) => e.kind)).toEqual(["send", "close"]);
    const [denial, close] = effects;
    if (denial?.kind !== "send" || close?.kind !== "close") throw new Error("unexpected effects");
    expect(Array.from(denial.frame.subarray(0, 2))).toEqual([2, 0]); // auth, permission denied
    expect(close).toMatchObject({
      connectionId: "r",
      code: 1008,
      reason: expect.stringMatching(/^permission denied/),
    });
    expect(replica.encodeDocument()).toEqual(before);
    expect(replica.connectionCount).toBe(1);
  });

  it("accepts an empty step 2 from a reader: the stock client always answers step 1", () => {
    const replica = open();
    replica.connect(info("r", 1000, READER));
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 0);
    encoding.writeVarUint(encoder, 1);
    encoding.writeVarUint8Array(encoder, Y.encodeStateAsUpdate(new Y.Doc()));
    expect(replica.receive("r", encoding.toUint8Array(encoder), NOW)).toEqual([]);
    expect(replica.connectionCount).toBe(1);
  });

  it("drops awareness from a connection without presence, without closing it", () => {
    const replica = open();
    replica.connect(info("r", 1000, READER));
    const effects = replica.receive(
      "r",
      OutgoingMessage.awareness([{ clientId: 3, clock: 1, json: '{"x":1}' }]),
      NOW,
    );
    expect(effects).toEqual([]);
    expect(replica.awarenessOwners()).toEqual([]);
    expect(replica.connectionCount).toBe(1);
  });

  it("expire() closes connections whose token has expired and reports the next expiry", () => {
    const replica = open();
    replica.connect(info("soon", 1000, { ...EVERYONE, userId: "soon", expiresAt: 5_000 }));
    replica.connect(info("later", 1000, { ...EVERYONE, userId: "later", expiresAt: 9_000 }));
    replica.connect(info("never", 1000, EVERYONE));
    const early = replica.expire(4_999);
    expect(early).toEqual({ effects: [], nextDeadline: 5_000 });
    const due = replica.expire(5_000);
    expect(due.effects).toEqual([
      {
        kind: "close",
        connectionId: "soon",
        code: 1008,
        reason: "token expired; reconnect with a fresh token",
      },
    ]);
    expect(due.nextDeadline).toBe(9_000);
    expect(replica.expire(10_000).nextDeadline).toBeNull();
    expect(replica.connectionCount).toBe(1);
  });
});

describe("RoomReplica.refreshIdentity (auth.refresh)", () => {
  const ADA: ConnectionIdentity = {
    userId: "ada",
    name: "Ada",
    rights: ["read", "write", "presence"],
    expiresAt: 5_000,
  };

  /** A control message on the extension channel, as a client sends it. */
  function controlFrame(message: unknown): Uint8Array {
    return buildFrame((e) => {
      encoding.writeVarUint(e, 100);
      encoding.writeVarString(e, JSON.stringify(message));
    });
  }

  /** The JSON messages of the extension frames among `effects` sent to `connectionId`. */
  function extensionsTo(effects: readonly RoomEffect[], connectionId: ConnectionId): unknown[] {
    return effects.flatMap((e) => {
      const to =
        (e.kind === "send" && e.connectionId === connectionId) ||
        (e.kind === "multicast" && e.connectionIds.includes(connectionId));
      if (!to || e.frame[0] !== 100) return [];
      const decoder = decoding.createDecoder(e.frame);
      decoding.readVarUint(decoder);
      return [JSON.parse(decoding.readVarString(decoder))];
    });
  }

  /** Ada (subscribed to presence events, with a cursor) and Bob watching. */
  function roomWithAda(identity: ConnectionIdentity = ADA) {
    const replica = open();
    replica.connect({ ...info("a", 1000, identity), presenceEvents: true });
    replica.connect({
      ...info("b", 1000, { ...EVERYONE, userId: "bob" }),
      presenceEvents: true,
    });
    replica.receive(
      "a",
      OutgoingMessage.awareness([{ clientId: 7, clock: 1, json: '{"x":1}' }]),
      NOW,
    );
    replica.takeWakeAt();
    return replica;
  }

  it("hands an auth.refresh frame to the shell as a verify-token effect, and nothing else", () => {
    const replica = roomWithAda();
    expect(
      replica.receive("a", controlFrame({ type: "auth.refresh", token: "t.o.k" }), 1_500),
    ).toEqual([{ kind: "verify-token", connectionId: "a", token: "t.o.k" }]);
    expect(replica.connectionCount).toBe(2);
  });

  it("same user: the expiry moves, the attachment follows, auth.refreshed goes to that socket only, presence does not change", () => {
    const replica = roomWithAda();
    const version = replica.presenceVersion;
    const fresh = { ...ADA, name: "Ada renamed", expiresAt: 9_000 };
    const effects = replica.refreshIdentity("a", fresh, 2_000);
    expect(kinds(effects)).toEqual(["attach:a", "send:a:extension"]);
    const attach = effects[0];
    if (attach?.kind !== "attach") throw new Error("expected attach");
    // What survives hibernation: the new expiry; the name stays as at connect.
    expect(roundTrip(attach.attachment).identity).toEqual({ ...ADA, expiresAt: 9_000 });
    expect(roundTrip(attach.attachment).clients.map((c) => c.clientId)).toEqual([7]);
    expect(extensionsTo(effects, "a")).toEqual([{ type: "auth.refreshed", expiresAt: 9_000 }]);
    expect(extensionsTo(effects, "b")).toEqual([]);
    expect(replica.presenceVersion).toBe(version);
    expect(replica.members().map((m) => [m.userId, m.name, m.status])).toEqual([
      ["ada", "Ada", "present"],
    ]);
    expect(replica.takeWakeAt()).toBe(9_000);
    // The old expiry passes without a close; the new one closes.
    expect(replica.expire(5_000)).toEqual({ effects: [], nextDeadline: 9_000 });
    expect(kinds(replica.expire(9_000).effects)).toContain("close:a");
  });

  it("another user's token closes the connection with 1008 and changes nothing else", () => {
    const replica = roomWithAda();
    const effects = replica.refreshIdentity(
      "a",
      { ...ADA, userId: "mallory", expiresAt: 9_000 },
      2_000,
    );
    expect(effects[0]).toEqual({
      kind: "close",
      connectionId: "a",
      code: 1008,
      reason: "token refresh names another user",
    });
    expect(extensionsTo(effects, "a")).toEqual([]);
    expect(replica.connectionCount).toBe(1);
  });

  it("a token already past its expiry (within the verifier's tolerance) closes with 1008", () => {
    const replica = roomWithAda();
    const effects = replica.refreshIdentity("a", { ...ADA, expiresAt: 1_900 }, 2_000);
    expect(effects[0]).toMatchObject({
      kind: "close",
      code: 1008,
      reason: "token refresh refused: token has expired",
    });
  });

  it("ignores a connection that closed while its token was checked", () => {
    const replica = roomWithAda();
    replica.disconnect("a", true, 1_800);
    expect(replica.refreshIdentity("a", { ...ADA, expiresAt: 9_000 }, 2_000)).toEqual([]);
  });

  it("narrowed rights apply from then on: without write an update is refused, without presence the cursor goes and stays gone", () => {
    const replica = roomWithAda();
    const effects = replica.refreshIdentity(
      "a",
      { ...ADA, rights: ["read"], expiresAt: 9_000 },
      2_000,
    );
    // Presence dropped: Ada's entry is removed for everyone else (not echoed to Ada, whose stock
    // client would re-send it), her member leaves, and her attachment owns nothing.
    expect(kinds(effects)).toEqual([
      "broadcast:awareness:except:a",
      "attach:a",
      "send:a:extension",
      "multicast:a,b",
    ]);
    const removal = effects[0];
    if (removal?.kind !== "broadcast") throw new Error("expected the removal");
    expect(awarenessEntriesOf(removal.frame)).toEqual([
      expect.objectContaining({ clientId: 7, json: "null" }),
    ]);
    const attach = effects[1];
    if (attach?.kind !== "attach") throw new Error("expected attach");
    expect(roundTrip(attach.attachment).identity.rights).toEqual(["read"]);
    expect(roundTrip(attach.attachment).clients).toEqual([]);
    expect(replica.members()).toEqual([]);
    // Her next cursor is dropped, and she stays connected.
    expect(
      replica.receive(
        "a",
        OutgoingMessage.awareness([{ clientId: 7, clock: 3, json: '{"x":2}' }]),
        2_100,
      ),
    ).toEqual([]);
    expect(replica.awarenessOwners()).toEqual([]);
    // Her next edit is refused as a reader's.
    const source = new Y.Doc();
    let update: Uint8Array = new Uint8Array();
    source.on("update", (u: Uint8Array) => {
      update = u;
    });
    source.getText("t").insert(0, "no longer allowed");
    const refused = replica.receive("a", syncUpdateFrame(update), 2_200);
    expect(refused.map((e) => e.kind)).toEqual(["send", "close"]);
    expect(refused[1]).toMatchObject({
      code: 1008,
      reason: expect.stringMatching(/^permission denied/),
    });
    expect(textOf(replica.encodeDocument())).toBe("");
  });

  it("widened rights apply at once: a reader refreshed with write may edit", () => {
    const replica = roomWithAda({ ...ADA, rights: ["read"] });
    replica.refreshIdentity("a", { ...ADA, expiresAt: 9_000 }, 2_000);
    const source = new Y.Doc();
    let update: Uint8Array = new Uint8Array();
    source.on("update", (u: Uint8Array) => {
      update = u;
    });
    source.getText("t").insert(0, "now allowed");
    expect(kinds(replica.receive("a", syncUpdateFrame(update), 2_100))).toEqual([
      "broadcast:sync2:except:a",
    ]);
    expect(textOf(replica.encodeDocument())).toBe("now allowed");
  });
});

describe("socket attachments", () => {
  it("are stored as UTF-8 bytes, so a state's cost is its UTF-8 size, and read back exactly", () => {
    const state = JSON.stringify({ pad: `${"a".repeat(8090)}€` }); // two bytes a character as a V8 string
    const attachment: ConnectionAttachment = {
      v: 1,
      room: ROOM,
      connectionId: "c1",
      region: "weur",
      joinedAt: 1,
      identity: { ...EVERYONE, user: { bio: "x".repeat(4000) } },
      presenceEvents: true,
      clients: [{ clientId: 5, clock: 9, ownerClock: 3, json: state }],
    };
    const stored = toStoredAttachment(attachment);
    const bytes =
      stored.head.byteLength + stored.clients.reduce((n, c) => n + c.json.byteLength, 0);
    expect(bytes).toBeLessThan(13 * 1024);
    expect(roundTrip(attachment)).toEqual(attachment);
    expect(fromStoredAttachment({ v: 2, head: new Uint8Array([1]), clients: [] })).toBeUndefined();
    expect(fromStoredAttachment("garbage")).toBeUndefined();
  });
});

describe("RoomReplica limits", () => {
  it("maxConnectionsPerRoom: one connection too many is closed with 1013, and a freed place is taken again", () => {
    const room = new Harness({ ...LIMITS, maxConnectionsPerRoom: 2 });
    room.connect("a", stockClient({ name: "a" }));
    room.connect("b", stockClient({ name: "b" }));
    const effects = room.replica.connect(info("c"));
    expect(effects).toEqual([
      {
        kind: "close",
        connectionId: "c",
        code: 1013,
        reason: "room full: 2 connections (limits.maxConnectionsPerRoom); try again later",
      },
    ]);
    expect(room.replica.connectionCount).toBe(2);
    expect(room.replica.receive("c", queryAwarenessFrame(), NOW)).toEqual([]); // never admitted
    room.disconnect("b");
    expect(kinds(room.replica.connect(info("d")))).toEqual([
      "send:d:sync0",
      "send:d:awareness",
      "attach:d",
    ]);
  });

  it("messagesPerSecond: a burst beyond messageBurst closes the sender with 1008; others keep their place", () => {
    const limits = { ...LIMITS, messagesPerSecond: 10, messageBurst: 5 };
    const room = new Harness(limits);
    const alice = stockClient({ name: "alice" });
    room.connect("a", alice);
    room.connect("b", stockClient({ name: "bob" }));
    const t0 = 2_000_000;
    for (let i = 0; i < 5; i++) {
      expect(kinds(room.replica.receive("b", queryAwarenessFrame(), t0))).toEqual([
        "send:b:awareness",
      ]);
    }
    const effects = room.replica.receive("b", queryAwarenessFrame(), t0);
    expect(effects[0]).toEqual({
      kind: "close",
      connectionId: "b",
      code: 1008,
      reason:
        "rate limit: over 10 messages/s (limits.messagesPerSecond), burst 5 (limits.messageBurst)",
    });
    // Bob's awareness goes at once, as with any close; Alice's connection is untouched.
    expect(kinds(effects.slice(1))).toEqual(["broadcast:awareness"]);
    expect(room.replica.connectionCount).toBe(1);
    expect(room.replica.awarenessOwners().map((m) => m.connectionId)).toEqual(["a"]);
    expect(kinds(room.replica.receive("a", queryAwarenessFrame(), t0))).toEqual([
      "send:a:awareness",
    ]);
  });

  it("messagesPerSecond: the bucket refills at the sustained rate", () => {
    const replica = open(new MemoryRoomStorage(), {
      ...LIMITS,
      messagesPerSecond: 10,
      messageBurst: 2,
    });
    replica.connect(info("a"));
    const t0 = 3_000_000;
    const ask = (at: number) => kinds(replica.receive("a", queryAwarenessFrame(), at));
    expect(ask(t0)).toEqual(["send:a:awareness"]);
    expect(ask(t0)).toEqual(["send:a:awareness"]);
    expect(ask(t0 + 100)).toEqual(["send:a:awareness"]); // 100 ms at 10/s: one token back
    expect(ask(t0 + 150)).toEqual(["close:a"]); // half a token is not a token
  });

  it("a client that stays within its rate is never closed, however long it runs", () => {
    const replica = open(new MemoryRoomStorage(), {
      ...LIMITS,
      messagesPerSecond: 20,
      messageBurst: 20,
    });
    replica.connect(info("a"));
    for (let i = 0; i < 2_000; i++) {
      expect(kinds(replica.receive("a", queryAwarenessFrame(), 5_000_000 + i * 50))).toEqual([
        "send:a:awareness",
      ]);
    }
  });

  it("maxDocumentBytes: an update that adds content past the limit is refused with 1009; the document is unchanged", () => {
    const room = new Harness({ ...LIMITS, maxDocumentBytes: 400 });
    const alice = stockClient();
    const bob = stockClient();
    room.connect("a", alice);
    room.connect("b", bob);
    room.send("a", edit(alice, 0, "x".repeat(200)));
    room.flushClients();
    const before = room.replica.encodeDocument();
    const effects = room.send("a", edit(alice, 0, "y".repeat(300)));
    expect(kinds(effects)).toEqual(["close:a", "broadcast:awareness"]); // the close, then Alice's cursor goes
    expect(effects[0]).toMatchObject({
      kind: "close",
      connectionId: "a",
      code: 1009,
      reason: expect.stringMatching(
        /^document full: \d+ bytes stored, limit 400 \(limits\.maxDocumentBytes\)/,
      ),
    });
    expect(room.replica.encodeDocument()).toEqual(before);
    expect(bob.text).toBe("x".repeat(200));
  });

  it("maxDocumentBytes: deletions still land in a full room, and the log is compacted before an update is refused", () => {
    const room = new Harness({ ...LIMITS, maxDocumentBytes: 600 });
    const alice = stockClient();
    const bob = stockClient();
    room.connect("a", alice);
    room.connect("b", bob);
    room.send("a", edit(alice, 0, "z".repeat(500)));
    room.flushClients();
    // Full: more content is refused, and compaction cannot help while the text is live.
    expect(room.send("a", edit(alice, 0, "y".repeat(200)))[0]).toMatchObject({ code: 1009 });
    expect(room.replica.storageStats().compactions).toBe(1);
    // A deletion is still accepted.
    bob.takeOutbox(); // Bob's relay of Alice's departure: not what this test is about
    bob.doc.getText("t").delete(0, 500);
    const [deletion] = bob.takeOutbox();
    expect(kinds(room.send("b", deletion as Uint8Array))).toEqual(["broadcast:sync2:except:b"]);
    // The stored bytes plus this update pass the limit, but compacted, the empty text is tiny.
    const stored = room.replica.storageStats();
    const next = edit(bob, 0, "w".repeat(100));
    expect(stored.snapshotBytes + stored.logBytes + next.byteLength).toBeGreaterThan(600);
    expect(kinds(room.send("b", next))).toEqual(["broadcast:sync2:except:b"]);
    expect(room.replica.storageStats().compactions).toBe(2);
    expect(textOf(room.replica.encodeDocument())).toBe("w".repeat(100));
  });
});
