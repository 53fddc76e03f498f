import { afterEach, describe, expect, it } from "vitest";
import * as Y from "yjs";
import { type RoomLimits, RoomReplica } from "../../src/core/room-replica";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import { homeAndBackup } from "../../src/replication/home-region";
import {
  nextReplicaTick,
  receiveReplicaMessage,
  tickReplica,
} from "../../src/replication/replica-driver";
import type { Addressed, SyncMessage } from "../../src/replication/replica-messages";
import { type LinkSettings, RoomLink } from "../../src/replication/room-link";
import { rendezvousRank } from "../../src/routing/rendezvous";
import { MemoryRoomStorage } from "../../src/storage/memory-room-storage";
import { TEST_ROOM_LIMITS } from "./room-limits";
import { StockClient } from "./stock-client";

const ROOM = "team:doc-1";
const T0 = 1_700_000_000_000;
const LINK: LinkSettings = { antiEntropyMs: 5_000, idleLeaveMs: 30_000, peerExpiryMs: 15_000 };
const REGIONS = ["wnam", "enam", "weur", "eeur", "apac"];
const THREE = ["wnam", "weur", "apac"];

const LIMITS: RoomLimits = TEST_ROOM_LIMITS;

const toDestroy: Array<{ destroy(): void }> = [];
afterEach(() => {
  for (const item of toDestroy.splice(0)) item.destroy();
});

/** The room's regions best first: home, backup, then the rest. */
function ranked(candidates: readonly string[], room = ROOM): string[] {
  return rendezvousRank(room, candidates);
}

function linkIn(region: string, candidates: readonly string[] = THREE, now = T0): RoomLink {
  const link = new RoomLink(ROOM, region, LINK);
  link.setCandidates(candidates, now);
  return link;
}

/** A link with local clients that has done its first sync; returns it and when it is next due. */
function activeLink(region: string, candidates: readonly string[] = THREE): RoomLink {
  const link = linkIn(region, candidates);
  link.noteConnections(1, T0);
  link.tick(T0);
  return link;
}

/** A link whose last client left at `T0 + 100` and that went on to leave (its tick after the idle time). */
function leavingLink(region: string): { link: RoomLink; at: number } {
  const link = activeLink(region);
  link.noteConnections(0, T0 + 100);
  const at = T0 + 100 + LINK.idleLeaveMs;
  expect(link.tick(at).syncWith.length).toBeGreaterThan(0);
  return { link, at };
}

const VECTOR = Y.encodeStateVector(new Y.Doc());

describe("RoomLink: joining", () => {
  it("a dormant link has no work; the first connection makes it sync at once with the home and backup", () => {
    const [home, backup, third] = ranked(THREE) as [string, string, string];
    const link = linkIn(third);
    expect(link.active).toBe(false);
    expect(link.nextTickAt).toBeNull();
    expect(link.tick(T0 + 1)).toEqual({ syncWith: [] });
    expect(link.replicaSet(T0)).toEqual([home, backup].sort());
    link.noteConnections(1, T0 + 10);
    expect(link.active).toBe(true);
    expect(link.nextTickAt).toBe(T0 + 10);
    expect(link.tick(T0 + 9)).toEqual({ syncWith: [] });
    expect(link.tick(T0 + 10)).toEqual({ syncWith: [home, backup].sort() });
    expect(link.replicaSet(T0 + 10)).toEqual(THREE.slice().sort());
    // Then once a period, whatever more connections come.
    expect(link.nextTickAt).toBe(T0 + 10 + LINK.antiEntropyMs);
    link.noteConnections(2, T0 + 20);
    expect(link.nextTickAt).toBe(T0 + 10 + LINK.antiEntropyMs);
    expect(link.tick(T0 + 20).syncWith).toEqual([]);
    expect(link.tick(T0 + 10 + LINK.antiEntropyMs).syncWith).toEqual([home, backup].sort());
  });

  it("home and backup are the two best rendezvous scores over the candidates, for any room", () => {
    for (let i = 0; i < 50; i++) {
      const room = `room-${i}`;
      const [home, backup] = rendezvousRank(room, REGIONS) as [string, string];
      expect(homeAndBackup(room, REGIONS)).toEqual({ home, backup });
      for (const region of REGIONS) {
        const link = new RoomLink(room, region, LINK);
        link.setCandidates(REGIONS, T0);
        expect(link.home).toBe(home);
        expect(link.targets(T0)).toEqual([home, backup].filter((r) => r !== region).sort());
      }
    }
    expect(homeAndBackup(ROOM, ["wnam"])).toEqual({ home: "wnam", backup: null });
    expect(homeAndBackup(ROOM, [])).toEqual({ home: null, backup: null });
  });

  it("when the home leaves the candidates, the backup becomes home and the next region backup, with a sync at once", () => {
    const [home, backup, third, fourth, fifth] = ranked(REGIONS) as [
      string,
      string,
      string,
      string,
      string,
    ];
    const link = activeLink(fifth, REGIONS);
    expect(link.targets(T0)).toEqual([home, backup].sort());
    const t = T0 + 1_000;
    link.setCandidates(
      REGIONS.filter((r) => r !== home),
      t,
    );
    expect(link.home).toBe(backup);
    expect(link.targets(t)).toEqual([backup, third].sort());
    expect(link.nextTickAt).toBe(t);
    expect(link.tick(t).syncWith).toEqual([backup, third].sort());
    // A region that holds no role leaving moves nothing and syncs nothing early.
    link.setCandidates(
      REGIONS.filter((r) => r !== home && r !== fourth),
      t + 10,
    );
    expect(link.home).toBe(backup);
    expect(link.nextTickAt).toBe(t + LINK.antiEntropyMs);
    // The home coming back gets anti-entropy at once, and its role back.
    link.setCandidates(REGIONS, t + 20);
    expect(link.home).toBe(home);
    expect(link.nextTickAt).toBe(t + 20);
    expect(link.tick(t + 20).syncWith).toEqual([home, backup].sort());
  });

  it("a dormant link follows the candidates without scheduling anything", () => {
    const [home, backup, third] = ranked(REGIONS) as [string, string, string];
    const link = linkIn(third, REGIONS);
    link.setCandidates(
      REGIONS.filter((r) => r !== home),
      T0 + 5,
    );
    expect(link.home).toBe(backup);
    expect(link.nextTickAt).toBeNull();
  });
});

describe("RoomLink: peers", () => {
  it("targets are the peers heard from within peerExpiryMs, the home and the backup, that may serve, never itself", () => {
    const [home, backup, third, fourth, fifth] = ranked(REGIONS) as [
      string,
      string,
      string,
      string,
      string,
    ];
    const link = activeLink(third, REGIONS);
    link.heardFrom(fourth, T0 + 100);
    link.heardFrom(third, T0 + 100); // itself: ignored
    expect(link.targets(T0 + 100)).toEqual([home, backup, fourth].sort());
    expect(link.targets(T0 + 100 + LINK.peerExpiryMs)).toEqual([home, backup, fourth].sort());
    expect(link.targets(T0 + 101 + LINK.peerExpiryMs)).toEqual([home, backup].sort());
    // Expired is forgotten, not only hidden.
    expect(link.targets(T0 + 100)).toEqual([home, backup].sort());
    // Heard again, it is a target again; a leaving message removes it at once.
    link.heardFrom(fifth, T0 + 200);
    expect(link.targets(T0 + 200)).toContain(fifth);
    link.heardFrom(fifth, T0 + 201, true);
    expect(link.targets(T0 + 201)).not.toContain(fifth);
    // A region that may not serve is never a target, even when heard from.
    link.heardFrom(fourth, T0 + 300);
    link.setCandidates(
      REGIONS.filter((r) => r !== fourth),
      T0 + 300,
    );
    expect(link.targets(T0 + 300)).toEqual([home, backup].sort());
    expect(link.replicaSet(T0 + 300)).toEqual([home, backup, third].sort());
  });

  it("learnPeers takes a list as peers now, itself left out", () => {
    const [home, backup, third, fourth] = ranked(REGIONS) as [string, string, string, string];
    const link = activeLink(home, REGIONS);
    link.learnPeers([home, third, fourth], T0 + 50);
    expect(link.targets(T0 + 50)).toEqual([backup, third, fourth].sort());
    expect(link.targets(T0 + 51 + LINK.peerExpiryMs)).toEqual([backup]);
  });
});

describe("RoomLink: leaving", () => {
  it("an idle replica that is neither home nor backup leaves only once the home's answer covers it and no longer lists it", () => {
    const [home, backup, third] = ranked(THREE) as [string, string, string];
    const link = activeLink(third);
    link.noteConnections(0, T0 + 100);
    // Not idle long enough yet: an ordinary period.
    expect(link.tick(T0 + LINK.antiEntropyMs).syncWith).toEqual([home, backup].sort());
    expect(link.onSync(home, VECTOR, [home, backup, third], true)).toEqual({ syncWith: [] });
    // Idle long enough: this period's sync to the home starts the leave.
    const at = T0 + 100 + LINK.idleLeaveMs;
    expect(link.tick(at)).toEqual({ syncWith: [home, backup].sort() });
    expect(link.active).toBe(true);
    // The backup's answer moves nothing; the home's asks for the leaving sync.
    expect(link.onSync(backup, VECTOR, [home, backup], true)).toEqual({ syncWith: [] });
    const vector = new Uint8Array([1, 2, 3]);
    expect(link.onSync(home, vector, [home, backup, third], true)).toEqual({
      syncWith: [],
      leave: { home, homeVector: vector },
    });
    // The home's answer to it: still listed, so not yet.
    expect(link.onSync(home, VECTOR, [home, backup, third], true)).toEqual({ syncWith: [] });
    expect(link.active).toBe(true);
    expect(link.onSync(home, VECTOR, [home], true)).toEqual({ syncWith: [] }); // active again: no leave
    // Next period: the same again; now the answer does not cover it.
    link.tick(at + LINK.antiEntropyMs);
    expect(link.onSync(home, VECTOR, [home], true).leave).toBeDefined();
    link.onSync(home, VECTOR, [home, backup], false);
    expect(link.active).toBe(true);
    // An answer without a list does not confirm either.
    link.tick(at + 2 * LINK.antiEntropyMs);
    expect(link.onSync(home, VECTOR, [home], true).leave).toBeDefined();
    link.onSync(home, VECTOR, undefined, true);
    expect(link.active).toBe(true);
    // Covered and no longer listed: dormant, and nothing more to do.
    link.tick(at + 3 * LINK.antiEntropyMs);
    expect(link.onSync(home, VECTOR, [home], true).leave).toBeDefined();
    expect(link.onSync(home, VECTOR, [home, backup], true)).toEqual({ syncWith: [] });
    expect(link.active).toBe(false);
    expect(link.nextTickAt).toBeNull();
    expect(link.tick(at + 10 * LINK.antiEntropyMs)).toEqual({ syncWith: [] });
    expect(link.replicaSet(at)).toEqual([home, backup].sort());
  });

  it("only the home it started with confirms: another region's answers move nothing", () => {
    const [home, backup, third] = ranked(THREE) as [string, string, string];
    const { link } = leavingLink(third);
    expect(link.onSync(backup, VECTOR, [backup], true)).toEqual({ syncWith: [] });
    expect(link.onSync(home, VECTOR, [home], true).leave?.home).toBe(home);
    expect(link.onSync(backup, VECTOR, [backup], true)).toEqual({ syncWith: [] });
    expect(link.active).toBe(true);
    link.onSync(home, VECTOR, [home], true);
    expect(link.active).toBe(false);
  });

  it("the home and the backup go dormant when idle, without a handshake", () => {
    const [home, backup] = ranked(THREE) as [string, string];
    for (const region of [home, backup]) {
      const link = activeLink(region);
      link.noteConnections(0, T0 + 100);
      const last = link.tick(T0 + 100 + LINK.idleLeaveMs);
      expect(last.leave).toBeUndefined();
      expect(last.syncWith).toEqual(
        THREE.filter((r) => r !== region && (r === home || r === backup)),
      );
      expect(link.active).toBe(false);
      expect(link.nextTickAt).toBeNull();
    }
    // With no region that may serve, there is no home to ask either.
    const alone = activeLink("weur");
    alone.setCandidates([], T0 + 1);
    alone.noteConnections(0, T0 + 100);
    alone.tick(T0 + 100 + LINK.idleLeaveMs);
    expect(alone.active).toBe(false);
  });

  it("a new connection while leaving, or while confirming, makes it active again", () => {
    const [home, , third] = ranked(THREE) as [string, string, string];
    const leaving = leavingLink(third);
    leaving.link.noteConnections(1, leaving.at + 1);
    expect(leaving.link.onSync(home, VECTOR, [home], true)).toEqual({ syncWith: [] });
    expect(leaving.link.active).toBe(true);
    // Its next period is an ordinary sync, not a leave.
    leaving.link.tick(leaving.at + LINK.antiEntropyMs);
    expect(leaving.link.onSync(home, VECTOR, [home], true)).toEqual({ syncWith: [] });

    const confirming = leavingLink(third);
    expect(confirming.link.onSync(home, VECTOR, [home], true).leave).toBeDefined();
    confirming.link.noteConnections(1, confirming.at + 1);
    confirming.link.onSync(home, VECTOR, [home], true);
    expect(confirming.link.active).toBe(true);
    expect(confirming.link.nextTickAt).toBe(confirming.at + LINK.antiEntropyMs);
  });

  it("a dormant replica that gets a connection again joins again at once", () => {
    const [home, backup, third] = ranked(THREE) as [string, string, string];
    const { link, at } = leavingLink(third);
    link.onSync(home, VECTOR, [home], true);
    link.onSync(home, VECTOR, [home], true);
    expect(link.active).toBe(false);
    link.noteConnections(1, at + 7);
    expect(link.nextTickAt).toBe(at + 7);
    expect(link.tick(at + 7).syncWith).toEqual([home, backup].sort());
  });
});

// ---------------------------------------------------------------------------------------------
// The link driven with real replicas (replica-driver.ts), as the shard shell and simulator do.

interface Replica {
  region: string;
  room: RoomReplica;
  link: RoomLink;
}

function replica(region: string, candidates: readonly string[] = THREE): Replica {
  const { room } = RoomReplica.open(
    ROOM,
    {
      storage: new MemoryRoomStorage(),
      presenceStore: new MemoryPresenceStore(),
      limits: LIMITS,
      presence: { graceMs: 15_000, historyFlushMs: 2_000, region },
      replication: { region, batchMs: 0 },
    },
    T0,
  );
  toDestroy.push(room);
  return { region, room, link: linkIn(region, candidates) };
}

function textOf(room: RoomReplica): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, room.encodeDocument());
  const text = doc.getText("t").toString();
  doc.destroy();
  return text;
}

type SyncWithUpdate = SyncMessage & { update?: Uint8Array };

/** Delivers messages and their replies until none is left; `drop` loses some. Returns what was delivered. */
function deliver(
  replicas: readonly Replica[],
  messages: readonly Addressed[],
  now: number,
  drop: (addressed: Addressed) => boolean = () => false,
  serves: (region: string) => boolean = () => true,
): Addressed[] {
  const byRegion = new Map(replicas.map((r) => [r.region, r]));
  const queue = [...messages];
  const delivered: Addressed[] = [];
  while (queue.length > 0) {
    const next = queue.shift() as Addressed;
    const target = byRegion.get(next.to);
    if (!target || drop(next)) continue;
    delivered.push(next);
    const { replies } = receiveReplicaMessage(target.room, target.link, next.message, now, serves);
    queue.push(...replies);
  }
  return delivered;
}

/** A stock client connected to a replica (its frames fed in; what the room sends is not needed). */
function connect(r: Replica, connectionId: string, client: StockClient, now: number): void {
  r.room.connect({
    connectionId,
    region: r.region,
    joinedAt: now,
    identity: { userId: connectionId, rights: ["read", "write", "presence"], expiresAt: null },
  });
  for (const frame of client.openFrames()) r.room.receive(connectionId, frame, now);
  client.takeOutbox();
  r.link.noteConnections(r.room.connectionCount, now);
}

function typeInto(
  r: Replica,
  connectionId: string,
  client: StockClient,
  text: string,
  now: number,
) {
  client.type(client.text.length, text);
  for (const frame of client.takeOutbox()) r.room.receive(connectionId, frame, now);
}

function stockClient(clientId: number): StockClient {
  const client = new StockClient(clientId);
  client.awareness.setLocalState({ id: clientId });
  client.takeOutbox();
  toDestroy.push(client);
  return client;
}

function sync(from: string, peers: string[] | undefined, leaving = false): SyncMessage {
  return {
    type: "sync",
    room: ROOM,
    from,
    stateVector: VECTOR,
    members: [],
    asOf: 0,
    reply: false,
    ...(peers ? { peers } : {}),
    ...(leaving ? { leaving: true } : {}),
  };
}

describe("RoomLink driven by the replica driver", () => {
  it("only the home's list of peers is learnt (and only of regions that may serve)", () => {
    const four = ["wnam", "weur", "apac", "eeur"];
    const [home, backup, third, fourth] = ranked(four) as [string, string, string, string];
    const r = replica(third, four);
    connect(r, "a", stockClient(1), T0);
    tickReplica(r.room, r.link, T0, true);
    const all = () => true;
    // Another replica's list: not learnt (lists passed around would keep departed peers alive).
    receiveReplicaMessage(r.room, r.link, sync(backup, [backup, fourth]), T0 + 1, all);
    expect(r.link.targets(T0 + 1)).toEqual([home, backup].sort());
    // The home's list while it leaves: not learnt either.
    receiveReplicaMessage(r.room, r.link, sync(home, [home, fourth], true), T0 + 2, all);
    expect(r.link.targets(T0 + 2)).toEqual([home, backup].sort());
    // The home's list: each region in it is a peer now.
    receiveReplicaMessage(r.room, r.link, sync(home, [home, fourth]), T0 + 3, all);
    expect(r.link.targets(T0 + 3)).toEqual([home, backup, fourth].sort());
    // A region the table holds dead is not learnt from the home's list.
    const r2 = replica(third, four);
    receiveReplicaMessage(
      r2.room,
      r2.link,
      sync(home, [home, fourth]),
      T0 + 4,
      (region) => region !== fourth,
    );
    expect(r2.link.targets(T0 + 4)).toEqual([home, backup].sort());
  });

  it("a replica heard from becomes a target; the home hands it out in its list", () => {
    const [home, backup, third] = ranked(THREE) as [string, string, string];
    const replicas = THREE.map((region) => replica(region));
    const [h, , t] = [home, backup, third].map(
      (region) => replicas.find((r) => r.region === region) as Replica,
    ) as [Replica, Replica, Replica];
    connect(t, "a", stockClient(1), T0);
    const out = tickReplica(t.room, t.link, T0, true);
    const delivered = deliver(replicas, out, T0);
    // The home has no client of its own (dormant): it lists the others.
    expect(h.link.active).toBe(false);
    expect(h.link.replicaSet(T0)).toEqual([backup, third].sort());
    const answer = delivered.find(
      (a) => a.to === third && a.message.type === "sync" && a.message.from === home,
    );
    expect(answer?.message.type === "sync" && answer.message.peers).toEqual([backup, third].sort());
  });

  it("leave handshake: the leaving sync carries what the home lacks; dormant once the home's answer confirms", () => {
    const [home, backup, third] = ranked(THREE) as [string, string, string];
    const replicas = THREE.map((region) => replica(region));
    const byRegion = (region: string) => replicas.find((r) => r.region === region) as Replica;
    const [h, b, t] = [byRegion(home), byRegion(backup), byRegion(third)];
    const client = stockClient(7);
    connect(t, "a", client, T0);
    deliver(replicas, tickReplica(t.room, t.link, T0, true), T0);
    expect(h.link.replicaSet(T0)).toContain(third);
    // An edit whose batch is lost, then the last client leaves.
    typeInto(t, "a", client, "kept", T0 + 10);
    expect(tickReplica(t.room, t.link, T0 + 10, true)).toHaveLength(2); // both lost
    t.room.disconnect("a", true, T0 + 20);
    t.link.noteConnections(0, T0 + 20);
    deliver(replicas, tickReplica(t.room, t.link, T0 + 20, true), T0 + 20);
    expect(textOf(h.room)).toBe("");
    // Idle long enough: the next period starts the leave. Batches are lost throughout, so what
    // the home gets, it gets from the leaving sync.
    const at = T0 + 20 + LINK.idleLeaveMs;
    expect(nextReplicaTick(t.room, t.link)).toBeLessThanOrEqual(at);
    const out = tickReplica(t.room, t.link, at);
    expect(out.map((a) => a.to)).toEqual([home, backup].sort());
    const dropBatches = (a: Addressed) => a.message.type === "batch";
    const delivered = deliver(replicas, out, at, dropBatches);
    const leaving = delivered.find((a) => a.message.type === "sync" && a.message.leaving);
    expect(leaving?.to).toBe(home);
    if (!leaving) throw new Error("no leaving sync");
    const update = (leaving.message as SyncWithUpdate).update;
    expect(update).toBeDefined();
    const lacked = new Y.Doc();
    Y.applyUpdate(lacked, update as Uint8Array);
    expect(lacked.getText("t").toString()).toBe("kept");
    expect(textOf(h.room)).toBe("kept");
    expect(t.link.active).toBe(false);
    expect(nextReplicaTick(t.room, t.link)).toBeNull();
    // The home lists it no more; the backup did not take part and forgets it in time.
    expect(h.link.replicaSet(at)).not.toContain(third);
    expect(b.link.targets(at + LINK.peerExpiryMs + 1)).not.toContain(third);
  });

  it("leave handshake: a home that answers without holding everything keeps the replica active; it tries again", () => {
    const [home, , third] = ranked(THREE) as [string, string, string];
    const replicas = THREE.map((region) => replica(region));
    const byRegion = (region: string) => replicas.find((r) => r.region === region) as Replica;
    const [h, t] = [byRegion(home), byRegion(third)];
    const client = stockClient(7);
    connect(t, "a", client, T0);
    deliver(replicas, tickReplica(t.room, t.link, T0, true), T0);
    typeInto(t, "a", client, "kept", T0 + 10);
    tickReplica(t.room, t.link, T0 + 10, true); // lost
    t.room.disconnect("a", true, T0 + 20);
    t.link.noteConnections(0, T0 + 20);
    tickReplica(t.room, t.link, T0 + 20, true); // lost
    const at = T0 + 20 + LINK.idleLeaveMs;
    // Batches lost, and the leaving sync arrives without its update.
    const strip = (a: Addressed): boolean => {
      if (a.message.type === "sync" && a.message.leaving)
        delete (a.message as SyncWithUpdate).update;
      return a.message.type === "batch";
    };
    deliver(replicas, tickReplica(t.room, t.link, at), at, strip);
    expect(textOf(h.room)).toBe("");
    expect(t.link.active).toBe(true);
    // The next period tries again, and this time the update lands.
    const next = nextReplicaTick(t.room, t.link) as number;
    expect(next).toBe(at + LINK.antiEntropyMs);
    deliver(replicas, tickReplica(t.room, t.link, next), next, (a) => a.message.type === "batch");
    expect(textOf(h.room)).toBe("kept");
    expect(t.link.active).toBe(false);
  });

  it("leave handshake: while the home's answer is lost the replica stays, and a new client keeps it", () => {
    const [home, , third] = ranked(THREE) as [string, string, string];
    const replicas = THREE.map((region) => replica(region));
    const t = replicas.find((r) => r.region === third) as Replica;
    const h = replicas.find((r) => r.region === home) as Replica;
    connect(t, "a", stockClient(7), T0);
    deliver(replicas, tickReplica(t.room, t.link, T0, true), T0);
    t.room.disconnect("a", true, T0 + 20);
    t.link.noteConnections(0, T0 + 20);
    deliver(replicas, tickReplica(t.room, t.link, T0 + 20, true), T0 + 20);
    const at = T0 + 20 + LINK.idleLeaveMs;
    // Every answer to the leaving sync is lost.
    const lost = (a: Addressed) => a.to === third && a.message.type === "sync" && !a.message.reply;
    let answers = 0;
    deliver(replicas, tickReplica(t.room, t.link, at), at, (a) => {
      if (a.to === home && a.message.type === "sync" && a.message.leaving) answers++;
      return answers > 0 && lost(a);
    });
    expect(answers).toBe(1);
    expect(t.link.active).toBe(true);
    expect(h.link.replicaSet(at)).not.toContain(third); // the home did let it go
    // A client arrives before the next period: it stays, and the home hears from it again.
    connect(t, "b", stockClient(8), at + 1);
    const next = nextReplicaTick(t.room, t.link) as number;
    deliver(replicas, tickReplica(t.room, t.link, next, true), next);
    expect(t.link.active).toBe(true);
    expect(h.link.replicaSet(next)).toContain(third);
  });

  it("a sync that asks for an answer gets one that asks for none, with what the asker lacks", () => {
    const [home, , third] = ranked(THREE) as [string, string, string];
    const h = replica(home);
    const t = replica(third);
    const client = stockClient(1);
    connect(h, "a", client, T0);
    typeInto(h, "a", client, "from home", T0);
    const out = tickReplica(t.room, t.link, T0); // dormant: nothing
    expect(out).toEqual([]);
    connect(t, "b", stockClient(2), T0 + 1);
    const ask = tickReplica(t.room, t.link, T0 + 1).filter(
      (a) => a.to === home && a.message.type === "sync",
    );
    expect(ask.map((a) => a.message.type === "sync" && a.message.reply)).toEqual([true]);
    const { replies } = receiveReplicaMessage(
      h.room,
      h.link,
      ask[0]?.message as SyncMessage,
      T0 + 2,
      () => true,
    );
    expect(replies.map((a) => [a.to, a.message.type])).toEqual([
      [third, "batch"],
      [third, "sync"],
    ]);
    const answer = replies[1]?.message as SyncMessage;
    expect(answer.reply).toBe(false);
    expect(answer.members.map((m) => m.clientId)).toEqual([1]);
    for (const reply of replies) {
      const back = receiveReplicaMessage(t.room, t.link, reply.message, T0 + 3, () => true);
      expect(back.replies.filter((a) => a.message.type === "sync")).toEqual([]);
    }
    expect(textOf(t.room)).toBe("from home");
    expect(t.room.members().map((m) => [m.clientId, m.region])).toEqual([
      [1, home],
      [2, third],
    ]);
  });

  it("nextReplicaTick is the earlier of the batch window and the link's next work", () => {
    const r = replica("weur");
    expect(nextReplicaTick(r.room, r.link)).toBeNull();
    connect(r, "a", stockClient(1), T0); // batch due now (window 0), sync due now
    expect(nextReplicaTick(r.room, r.link)).toBe(T0);
    tickReplica(r.room, r.link, T0);
    expect(r.room.batchDueAt).toBeNull();
    expect(nextReplicaTick(r.room, r.link)).toBe(T0 + LINK.antiEntropyMs);
    const client = stockClient(2);
    connect(r, "b", client, T0 + 10);
    expect(nextReplicaTick(r.room, r.link)).toBe(T0 + 10);
  });
});

describe("gap repair", () => {
  it("repairGap allows one ask per peer per gapRepairMs", () => {
    const link = new RoomLink(ROOM, "wnam", { ...LINK, gapRepairMs: 250 });
    expect(link.repairGap("weur", T0)).toBe(true);
    expect(link.repairGap("weur", T0 + 249)).toBe(false);
    expect(link.repairGap("apac", T0 + 249)).toBe(true); // each peer on its own
    expect(link.repairGap("weur", T0 + 250)).toBe(true);
  });

  it("an update that arrives before the one it builds on makes the receiver ask its sender for a sync at once", () => {
    const west = replica("wnam", ["wnam", "weur"]);
    const europe = replica("weur", ["wnam", "weur"]);
    const ada = stockClient(101);
    connect(west, "a", ada, T0);
    tickReplica(west.room, west.link, T0, true); // the join goes out (not delivered here)
    typeInto(west, "a", ada, "first", T0 + 1);
    const lost = tickReplica(west.room, west.link, T0 + 1, true).find(
      (a) => a.to === "weur" && a.message.type === "batch",
    );
    expect(lost).toBeDefined(); // this batch is lost on its way
    typeInto(west, "a", ada, " second", T0 + 2);
    const next = tickReplica(west.room, west.link, T0 + 2, true).find(
      (a) => a.to === "weur" && a.message.type === "batch",
    ) as Addressed;
    const received = receiveReplicaMessage(
      europe.room,
      europe.link,
      next.message,
      T0 + 50,
      () => true,
    );
    expect(europe.room.waitingPeerUpdates).toBe(1);
    expect(
      received.replies.map((r) => [r.to, r.message.type, "reply" in r.message && r.message.reply]),
    ).toEqual([["wnam", "sync", true]]);
    // The sender answers with what is missing; the waiting update then applies too.
    const answers = receiveReplicaMessage(
      west.room,
      west.link,
      (received.replies[0] as Addressed).message,
      T0 + 100,
      () => true,
    ).replies.filter((r) => r.message.type === "batch");
    for (const answer of answers)
      receiveReplicaMessage(europe.room, europe.link, answer.message, T0 + 150, () => true);
    expect(europe.room.waitingPeerUpdates).toBe(0);
    expect(textOf(europe.room)).toBe("first second");
  });
});
