import * as decoding from "lib0/decoding";
import { removeAwarenessStates } from "y-protocols/awareness";
import * as Y from "yjs";
import type { ConnectionIdentity } from "../../src/auth/authenticate";
import {
  fanoutSchema,
  limitsSchema,
  membershipSchema,
  replicationSchema,
} from "../../src/config/config-schema";
import type { RoomEffect } from "../../src/core/room-replica";
import { excludes, RoomReplica } from "../../src/core/room-replica";
import type { GossipSettings } from "../../src/membership/membership-node";
import type { Member } from "../../src/presence/presence-schema";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import { MessageType } from "../../src/protocol/message-types";
import { homeAndBackup } from "../../src/replication/home-region";
import {
  nextReplicaTick,
  receiveReplicaMessage,
  tickReplica,
} from "../../src/replication/replica-driver";
import type { Addressed, ReplicaMessage } from "../../src/replication/replica-messages";
import { replicaMessageSchema } from "../../src/replication/replication-schema";
import { RoomLink } from "../../src/replication/room-link";
import { MemoryRoomStorage } from "../../src/storage/memory-room-storage";
import { StockClient } from "../unit/stock-client";
import type { RttMatrix } from "./latency";
import { MembershipCluster } from "./membership-cluster";
import { type LinkFaults, type NetworkStats, NO_FAULTS, SimNetwork } from "./network";
import { SimRandom } from "./random";
import type { Scheduler } from "./scheduler";

/**
 * Many regions' shards on one virtual clock, each running the real room cores exactly as the
 * shard Durable Object wires them (durable-objects/shard.ts, shard-replication.ts): stock
 * y-websocket clients on local sockets, replica messages over RPC (request and answer both
 * cross the simulated network), a batch timer, one durable alarm per shard, and the region's
 * own membership node (the real membership cores, via MembershipCluster) for the regions that
 * may serve and the regions declared dead.
 */

/** The shipped fan-out coalescing (config defaults). */
const SIM_FANOUT = fanoutSchema.parse({});

/** Replication timings of the simulator (the shipped defaults, idleLeaveMs halved to keep runs short). */
export interface ReplicationTimings {
  batchMs: number;
  antiEntropyMs: number;
  idleLeaveMs: number;
  peerExpiryMs: number;
  gapRepairMs: number;
  /** An RPC whose answer takes longer than this is lost (the shell's withTimeout). */
  rpcTimeoutMs: number;
}

export const SIM_REPLICATION: ReplicationTimings = (() => {
  const r = replicationSchema.parse({ idleLeaveMs: 30_000 });
  return {
    batchMs: r.batchMs,
    antiEntropyMs: r.antiEntropyMs,
    idleLeaveMs: r.idleLeaveMs,
    peerExpiryMs: r.peerExpiryMs,
    gapRepairMs: r.gapRepairMs,
    rpcTimeoutMs: r.rpcTimeoutMs,
  };
})();

/** The shipped disconnect grace. */
export const SIM_GRACE_MS = 15_000;

/** The shipped limits (rate limits included: stock clients relay every awareness change). */
const LIMITS = limitsSchema.parse({});

/** Replies to a reply are followed this deep, as in the shell (sync, sync, leave). */
const MAX_CHAIN = 4;

/**
 * Shell behaviours the simulator found necessary, as switches: the shipped shell
 * (durable-objects/shard-replication.ts) has `separateDeathHandling`, `resumeAfterRestart` and
 * `keepLinksInUse`; turning one off (`SIM_SHELL=-name`) replays the failure that called for it.
 * `pollWhileLoaded` is hardening that 200 seeds did not need once the cores were fixed (not
 * shipped).
 */
export interface ShellModel {
  /**
   * A region newly dead is handled against the set of deaths already handled. Compared with the
   * cached table instead, which a peer's message may have refreshed first (after
   * `membership.cacheMs`), that death is never handled and its members stay everywhere (replay
   * seed 24301 of "region outage" with this off).
   */
  separateDeathHandling: boolean;
  /**
   * The alarm re-reads the table at least once per anti-entropy period while rooms are loaded.
   * The shipped alarm follows the links' timers only, so a resting home or backup learns of a
   * death when a message next wakes its room (any active replica's anti-entropy does).
   */
  pollWhileLoaded: boolean;
  /**
   * The rooms whose link is active are kept in storage; after a restart the alarm loads them
   * and resumes their links (`RoomLink.noteLocalChanges`). Without it, an update whose batch
   * was lost just before its shard crashed stays only in that region's storage when no client
   * brings it back (invariant 2; replay seed 3176323744 of "replication chaos" with this off).
   */
  resumeAfterRestart: boolean;
  /**
   * The alarm forgets a room's link only when `link.forgettable(now)` (and no batch waits).
   * Forgetting every dormant link at the alarm, a home without clients of its own loses the
   * room's replica directory (its `heard` map) and hands out only the peers heard since, so
   * active replicas may never learn of each other, nor see each other's members (replay seed
   * 3598521870 of "replication chaos" with this off: 27 s to converge after the heal); and a
   * resting home loses the timer by which it asks the regions whose members it holds.
   */
  keepLinksInUse: boolean;
}

/** The shipped shell: the three behaviours the invariants need (`pollWhileLoaded` is optional hardening). */
export const FIXED_SHELL: ShellModel = {
  separateDeathHandling: true,
  pollWhileLoaded: false,
  resumeAfterRestart: true,
  keepLinksInUse: true,
};

/** The shell before the simulator's findings (see ShellModel): `SIM_SHELL=current` replays it. */
export const CURRENT_SHELL: ShellModel = {
  separateDeathHandling: false,
  pollWhileLoaded: false,
  resumeAfterRestart: false,
  keepLinksInUse: false,
};

function shellFromEnv(): ShellModel {
  const spec = process.env.SIM_SHELL ?? "";
  if (spec === "current") return CURRENT_SHELL;
  const shell = { ...FIXED_SHELL };
  for (const name of spec.split(",")) {
    const key = name.replace(/^[-+]/, "");
    if (key in shell) shell[key as keyof ShellModel] = !name.startsWith("-");
  }
  return shell;
}

export interface ReplicationClusterOptions {
  seed: number;
  regions: readonly string[];
  rtt: RttMatrix;
  /** Loss, duplication and jitter, for replica messages and gossip alike. */
  faults?: LinkFaults;
  /** Membership settings (default: the shipped ones). */
  membership?: GossipSettings;
  replication?: Partial<ReplicationTimings>;
  graceMs?: number;
  /** Default FIXED_SHELL; env SIM_SHELL=current gives CURRENT_SHELL, SIM_SHELL=-a,+b turns switches off or on. */
  shell?: Partial<ShellModel>;
}

/** A y-websocket client: its Y.Doc and Awareness persist across reconnects, as with the provider. */
export class SimClient {
  readonly stock: StockClient;
  /** Where it is connected now. */
  connection: { region: string; id: string } | null = null;
  private sockets = 0;
  /** Tokens it typed while connected (applied at once by its replica). */
  readonly applied: string[] = [];

  constructor(
    readonly name: string,
    readonly userId: string,
    readonly room: string,
    clientId: number,
  ) {
    this.stock = new StockClient(clientId);
  }

  get clientId(): number {
    return this.stock.clientId;
  }

  get text(): string {
    return this.stock.text;
  }

  nextConnectionId(): string {
    this.sockets += 1;
    return `${this.name}#${this.sockets}`;
  }

  /**
   * Its socket closed, whoever closed it: as the provider does, every other client's awareness
   * is dropped locally, and what it would have sent is lost with the socket.
   */
  dropped(): void {
    this.connection = null;
    const others = [...this.stock.awareness.getStates().keys()].filter(
      (id) => id !== this.clientId,
    );
    removeAwarenessStates(this.stock.awareness, others, "close");
    this.stock.takeOutbox();
  }
}

export interface TrafficStats {
  /** Replica messages (requests and RPC answers) sent between regions, by type. */
  messages: number;
  batches: number;
  syncs: number;
  /** Payload bytes (counted while `measuring`): binary fields at their length, the rest as JSON. */
  bytes: number;
}

/** Something a well-behaved client or an honest peer should never cause. */
export interface Anomaly {
  at: number;
  region: string;
  what: string;
}

/** One change measured from its local apply until every other region's connected clients have it. */
export interface Probe {
  kind: "update" | "awareness";
  room: string;
  origin: string;
  at: number;
  /** Virtual ms until each region's clients had it. */
  reached: Map<string, number>;
  waiting: Set<string>;
  has: (client: SimClient) => boolean;
}

interface TableView {
  candidates: string[];
  dead: Set<string>;
}

/** One region's shard: memory (rooms, links, sockets, timers) lost in a crash; storage and the alarm kept. */
export class SimShard {
  readonly storage = new MemoryRoomStorage();
  readonly presenceStore = new MemoryPresenceStore();
  up = true;
  /** Bumped on each crash: timers and RPC answers of an earlier life do nothing. */
  life = 0;
  readonly rooms = new Map<string, RoomReplica>();
  readonly links = new Map<string, RoomLink>();
  readonly sockets = new Map<string, SimClient>();
  /** The dead regions as of the last table read (the shell's cached table: memory). */
  lastDead = new Set<string>();
  /**
   * The dead regions whose members this shard's rooms have dropped. Kept apart from the table:
   * a table read on a peer's message must not count as handling a death (the shell's `before`
   * is its cached table, refreshed on messages too, so a death seen first there is never handled).
   */
  handledDead = new Set<string>();
  /** The durable alarm (survives a crash). */
  alarmAt: number | null = null;
  /**
   * Rooms whose link is active, kept in storage (survives a crash): after a restart the alarm
   * loads them and resumes their links (`ShellModel.resumeAfterRestart`; SQLite in the shell).
   */
  readonly replicating = new Set<string>();
  private batchTimerAt = Number.POSITIVE_INFINITY;

  constructor(
    readonly region: string,
    private readonly cluster: ReplicationCluster,
  ) {}

  private get now(): number {
    return this.cluster.now;
  }

  // Sockets (shard.ts: fetch, webSocketMessage, webSocketClose).

  connect(client: SimClient): void {
    const room = this.room(client.room);
    const id = client.nextConnectionId();
    client.connection = { region: this.region, id };
    this.sockets.set(id, client);
    client.stock.takeOutbox();
    const identity: ConnectionIdentity = {
      userId: client.userId,
      rights: ["read", "write", "presence"],
      expiresAt: null,
    };
    const now = this.now;
    this.run(
      room,
      room.connect({ connectionId: id, region: this.region, joinedAt: now, identity }),
    );
    this.afterLocal(room);
    // The provider sends its own frames as the socket opens, before it reads the server's.
    const answers = client.stock.takeOutbox();
    for (const frame of [...client.stock.openFrames(), ...answers]) this.frame(id, frame);
    this.pump();
  }

  /** The client closes its socket (cleanly, or the line drops). */
  disconnect(client: SimClient, clean: boolean): void {
    const id = client.connection?.id;
    client.dropped();
    if (id === undefined || !this.sockets.has(id)) return;
    this.sockets.delete(id);
    const room = this.rooms.get(client.room);
    if (!room) return;
    this.run(room, room.disconnect(id, clean, this.now));
    this.afterLocal(room);
    this.pump();
  }

  /** Feeds every client's outbox to its room until nothing more comes (local sockets: no delay). */
  pump(): void {
    for (let round = 0; round < 100; round++) {
      let sent = false;
      for (const [id, client] of [...this.sockets]) {
        for (const frame of client.stock.takeOutbox()) {
          sent = true;
          this.frame(id, frame);
        }
      }
      if (!sent) return;
    }
    throw new Error(`${this.region}: clients and rooms never went quiet`);
  }

  private frame(id: string, frame: Uint8Array): void {
    const client = this.sockets.get(id);
    if (!client) return;
    const room = this.room(client.room);
    this.run(room, room.receive(id, frame, this.now));
    this.afterLocal(room);
  }

  // The room cache and effects (shard.ts: room, run).

  /** The loaded room, loaded from storage when needed. */
  room(name: string): RoomReplica {
    const loaded = this.rooms.get(name);
    if (loaded) return loaded;
    const { room, effects } = RoomReplica.open(
      name,
      {
        storage: this.storage,
        presenceStore: this.presenceStore,
        limits: LIMITS,
        presence: {
          graceMs: this.cluster.graceMs,
          historyFlushMs: 2_000,
          region: this.region,
        },
        replication: { region: this.region, batchMs: this.cluster.timings.batchMs },
        // The shipped coalescing: changes held back for a window, written and sent together.
        fanout: SIM_FANOUT,
      },
      this.now,
    );
    this.rooms.set(name, room);
    this.run(room, effects);
    if (this.cluster.shell.resumeAfterRestart && this.replicating.has(name)) {
      // It was replicating when memory was lost: local changes may not have reached any peer
      // (a lost batch, and no anti-entropy since), so its link takes part again at once.
      const link = this.link(name);
      link.noteLocalChanges(this.now);
      this.schedule(room, link);
    }
    // The table is polled on the alarm at least once per anti-entropy period while rooms are loaded.
    if (this.cluster.shell.pollWhileLoaded)
      this.wake(this.now + this.cluster.timings.antiEntropyMs);
    return room;
  }

  private run(room: RoomReplica, effects: readonly RoomEffect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case "send":
          this.toClient(room.name, effect.connectionId, effect.frame);
          break;
        case "broadcast":
          for (const [id, client] of [...this.sockets])
            if (client.room === room.name && !excludes(effect.except, id))
              this.toClient(room.name, id, effect.frame);
          break;
        case "multicast":
          for (const id of effect.connectionIds) this.toClient(room.name, id, effect.frame);
          break;
        case "close": {
          this.cluster.anomaly(this.region, `closed ${effect.connectionId}: ${effect.reason}`);
          const client = this.sockets.get(effect.connectionId);
          this.sockets.delete(effect.connectionId);
          client?.dropped();
          break;
        }
        case "fail-room":
          this.cluster.anomaly(this.region, `room ${room.name} failed: ${effect.reason}`);
          this.rooms.delete(room.name);
          room.destroy();
          for (const [id, client] of [...this.sockets]) {
            if (client.room !== room.name) continue;
            this.sockets.delete(id);
            client.dropped();
          }
          return;
        default:
          break;
      }
    }
    this.cluster.observe(this.region, room);
    this.wake(room.takeWakeAt());
    const fanoutAt = room.takeFanoutAt();
    if (fanoutAt !== null) this.armFanoutTimer(room, fanoutAt);
  }

  /** The end of a room's coalescing window (shard.ts: fanout-timers.ts); lost with a crash, as in memory. */
  private armFanoutTimer(room: RoomReplica, at: number): void {
    const life = this.life;
    this.cluster.scheduler.at(at, () => {
      if (this.life !== life || !this.up || this.rooms.get(room.name) !== room) return;
      this.run(room, room.flushFanout(this.now));
    });
  }

  private toClient(room: string, id: string, frame: Uint8Array): void {
    const client = this.sockets.get(id);
    if (!client || client.room !== room) return;
    // Extension frames go only to opted-in connections; a stock client never sees one.
    if (decoding.readVarUint(decoding.createDecoder(frame)) === MessageType.Halo) return;
    client.stock.receive(frame);
  }

  // Replication (shard-replication.ts).

  private link(name: string): RoomLink {
    let link = this.links.get(name);
    if (!link) {
      const { antiEntropyMs, idleLeaveMs, peerExpiryMs, gapRepairMs } = this.cluster.timings;
      link = new RoomLink(name, this.region, {
        antiEntropyMs,
        idleLeaveMs,
        peerExpiryMs,
        gapRepairMs,
      });
      link.setCandidates(this.table().candidates, this.now);
      this.links.set(name, link);
    }
    return link;
  }

  private table(): TableView {
    const view = this.cluster.tableOf(this.region, this.lastDead);
    this.lastDead = view.dead;
    return view;
  }

  /** After a local call into a room: its link learns the connection count, due work goes out. */
  private afterLocal(room: RoomReplica): void {
    const link = this.link(room.name);
    link.noteConnections(room.connectionCount, this.now);
    this.schedule(room, link);
  }

  private schedule(room: RoomReplica, link: RoomLink): void {
    this.remember(room.name, link);
    const next = nextReplicaTick(room, link);
    if (next === null) return;
    if (next <= this.now) {
      link.setCandidates(this.table().candidates, this.now);
      this.sendAll(tickReplica(room, link, this.now), 0);
    }
    const batchAt = room.batchDueAt;
    if (batchAt !== null) this.armBatchTimer(batchAt);
    this.wake(link.nextTickAt);
  }

  /** A peer's message (or an RPC answer): applied; returns the replies. */
  deliver(message: ReplicaMessage): Addressed[] {
    const table = this.table();
    const room = this.room(message.room);
    const link = this.link(message.room);
    const { effects, replies } = receiveReplicaMessage(room, link, message, this.now, (r) => {
      return !table.dead.has(r);
    });
    this.run(room, effects);
    this.schedule(room, link);
    return replies;
  }

  sendAll(out: readonly Addressed[], depth: number): void {
    for (const addressed of out) this.cluster.rpc(this.region, addressed, depth);
  }

  private remember(name: string, link: RoomLink): void {
    if (link.active) this.replicating.add(name);
    else this.replicating.delete(name);
  }

  private armBatchTimer(at: number): void {
    if (this.batchTimerAt <= at) return;
    this.batchTimerAt = at;
    const life = this.life;
    this.cluster.scheduler.at(at, () => {
      if (this.life !== life || !this.up || this.batchTimerAt !== at) return;
      this.flushBatches();
      this.pump();
    });
  }

  /** The batch window ended: every room's waiting batch goes to its peers. */
  private flushBatches(): void {
    this.batchTimerAt = Number.POSITIVE_INFINITY;
    let next: number | null = null;
    for (const [name, link] of [...this.links]) {
      const room = this.rooms.get(name);
      const due = room?.batchDueAt ?? null;
      if (!room || due === null) continue;
      if (due <= this.now) this.sendAll(tickReplica(room, link, this.now, true), 0);
      else if (next === null || due < next) next = due;
    }
    if (next !== null) this.armBatchTimer(next);
  }

  // The alarm (shard.ts: alarm, runDueWork; shard-replication.ts: onAlarm).

  /** Moves the alarm earlier, to `at`. */
  wake(at: number | null): void {
    if (at === null || !this.up) return;
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    this.armAlarm(at);
  }

  armAlarm(at: number): void {
    const life = this.life;
    this.cluster.scheduler.at(at, () => {
      if (this.life !== life || !this.up || this.alarmAt !== at) return;
      this.alarm();
    });
  }

  private alarm(): void {
    const now = this.now;
    this.alarmAt = null;
    let next: number | null = null;
    // Rooms that were replicating when memory was lost are loaded (and so resumed).
    if (this.cluster.shell.resumeAfterRestart) for (const name of this.replicating) this.room(name);
    const names = new Set([...this.rooms.keys(), ...this.presenceStore.roomsInGrace()]);
    for (const name of names) {
      const room = this.room(name);
      const { effects, nextDeadline } = room.expire(now);
      this.run(room, effects);
      this.afterLocal(room); // graces that ended are changes for peers
      next = earliest(next, nextDeadline);
    }
    next = earliest(next, this.onAlarm());
    // The table is re-read at least once per anti-entropy period while rooms are loaded.
    if (this.cluster.shell.pollWhileLoaded && this.rooms.size > 0)
      next = earliest(next, now + this.cluster.timings.antiEntropyMs);
    this.pump();
    this.cluster.checkAuthorship(this.region);
    this.wake(next);
  }

  private onAlarm(): number | null {
    const now = this.now;
    if (!this.cluster.shell.pollWhileLoaded && this.links.size === 0) return null;
    const before = this.lastDead;
    const table = this.table();
    const handled = this.cluster.shell.separateDeathHandling ? this.handledDead : before;
    // A region newly declared dead: its members leave every loaded room here.
    for (const lost of table.dead) {
      if (handled.has(lost)) continue;
      for (const room of [...this.rooms.values()]) this.run(room, room.regionLost(lost, now));
    }
    this.handledDead = new Set(table.dead);
    let next: number | null = null;
    for (const [name, link] of [...this.links]) {
      link.setCandidates(table.candidates, now);
      const room = link.active ? this.room(name) : this.rooms.get(name);
      if (!room) {
        this.links.delete(name);
        continue;
      }
      const due = nextReplicaTick(room, link);
      if (due !== null && due <= now) this.sendAll(tickReplica(room, link, now), 0);
      next = earliest(next, nextReplicaTick(room, link));
      this.remember(name, link);
      const idle = this.cluster.shell.keepLinksInUse
        ? link.forgettable(now) && room.batchDueAt === null
        : !link.active && room.batchDueAt === null;
      if (idle && room.connectionCount === 0) this.links.delete(name);
    }
    return next;
  }

  // Crashes.

  /** Memory is lost: rooms, links, sockets (their clients see the line drop), timers. */
  crash(): void {
    this.up = false;
    this.life += 1;
    for (const room of this.rooms.values()) room.destroy();
    this.rooms.clear();
    this.links.clear();
    this.lastDead = new Set();
    this.handledDead = new Set();
    this.batchTimerAt = Number.POSITIVE_INFINITY;
    for (const client of this.sockets.values()) client.dropped();
    this.sockets.clear();
  }

  /** Back, with its storage; the durable alarm fires if it was set. */
  restart(): void {
    if (this.up) return;
    this.up = true;
    this.life += 1;
    if (this.alarmAt !== null) {
      const at = Math.max(this.alarmAt, this.now);
      this.alarmAt = at;
      this.armAlarm(at);
    }
  }
}

/** Every region's shard and membership node, the stock clients, and the network between them. */
export class ReplicationCluster {
  readonly membership: MembershipCluster;
  readonly scheduler: Scheduler;
  /** Replica messages between regions (gossip has its own network, with the same faults and cuts). */
  readonly network: SimNetwork;
  readonly random: SimRandom;
  readonly timings: ReplicationTimings;
  readonly graceMs: number;
  readonly clients: SimClient[] = [];
  readonly anomalies: Anomaly[] = [];
  readonly traffic: TrafficStats = { messages: 0, batches: 0, syncs: 0, bytes: 0 };
  readonly probes: Probe[] = [];
  /** Probes some region still waits for. */
  #open: Probe[] = [];
  /** Every member a region's own replica held as local: `region|clientId|userId|connectionId`. */
  readonly authored = new Set<string>();
  readonly #shards = new Map<string, SimShard>();
  readonly #seenVersion = new Map<string, number>();
  readonly #clientIds = new Set<number>();
  /** Checks authorship on every alarm (costly with many members; the properties turn it on). */
  checkAuthorshipOnAlarm = true;
  readonly shell: ShellModel;
  measuring = false;
  /** Set SIM_TRACE=1 to print what happens (crashes, partitions, clients), for replaying a seed. */
  trace: ((line: string) => void) | null = process.env.SIM_TRACE
    ? (line) => console.log(`${this.now.toFixed(0)} ${line}`)
    : null;

  constructor(readonly options: ReplicationClusterOptions) {
    const settings = options.membership ?? membershipSchema.parse({});
    this.membership = new MembershipCluster({
      seed: options.seed,
      regions: options.regions,
      settings,
      rtt: options.rtt,
      faults: { ...(options.faults ?? NO_FAULTS) },
    });
    this.scheduler = this.membership.scheduler;
    this.random = new SimRandom(options.seed).fork("replication");
    this.network = new SimNetwork(this.scheduler, this.random.fork("network"), options.rtt, {
      ...(options.faults ?? NO_FAULTS),
    });
    this.timings = { ...SIM_REPLICATION, ...options.replication };
    this.shell = { ...shellFromEnv(), ...options.shell };
    this.graceMs = options.graceMs ?? SIM_GRACE_MS;
    for (const region of options.regions) this.#shards.set(region, new SimShard(region, this));
  }

  get regions(): readonly string[] {
    return this.options.regions;
  }

  get now(): number {
    return this.scheduler.now;
  }

  get settings(): GossipSettings {
    return this.membership.options.settings;
  }

  /** Starts every region's membership and runs until every table agrees that all are alive. */
  start(boundMs = 120_000): number {
    this.membership.startAll();
    const took = this.runUntil(
      () =>
        this.membership.up().length === this.regions.length &&
        this.membership.converged() &&
        this.regions.every((r) => this.membership.allSee(r, "alive")),
      boundMs,
    );
    if (took === undefined) throw new Error("membership did not settle");
    return took;
  }

  runFor(ms: number): void {
    this.scheduler.runUntil(this.now + ms);
  }

  /** Runs until `done()` holds (checked after each event) or `ms` pass; the time it took, or undefined. */
  runUntil(done: () => boolean, ms: number): number | undefined {
    const start = this.now;
    const at = this.scheduler.runUntilTrue(done, start + ms);
    return at === undefined ? undefined : at - start;
  }

  /** Like `runUntil`, checking only every `stepMs` (for costly conditions). */
  runUntilEvery(done: () => boolean, ms: number, stepMs: number): number | undefined {
    const start = this.now;
    for (;;) {
      if (done()) return this.now - start;
      if (this.now - start >= ms) return undefined;
      this.runFor(Math.min(stepMs, start + ms - this.now));
    }
  }

  shard(region: string): SimShard {
    const shard = this.#shards.get(region);
    if (!shard) throw new Error(`no region ${region}`);
    return shard;
  }

  isUp(region: string): boolean {
    return this.shard(region).up;
  }

  upRegions(): string[] {
    return this.regions.filter((r) => this.isUp(r));
  }

  // Faults.

  setFaults(faults: LinkFaults): void {
    this.network.faults = { ...faults };
    this.membership.network.faults = { ...faults };
  }

  partition(a: readonly string[], b: readonly string[]): void {
    this.trace?.(`partition ${a.join(",")} | ${b.join(",")}`);
    this.network.partition(a, b);
    this.membership.network.partition(a, b);
  }

  heal(): void {
    this.trace?.("heal");
    this.network.heal();
    this.membership.network.heal();
  }

  makeSlow(region: string, extraMs: number): void {
    this.network.slow(region, extraMs);
    this.membership.makeSlow(region, extraMs, 0);
  }

  /** The shard loses its memory (a Durable Object reset); its directory stays up. */
  crashShard(region: string): void {
    this.trace?.(`${region}: shard crashes`);
    this.shard(region).crash();
  }

  restartShard(region: string): void {
    this.trace?.(`${region}: shard restarts`);
    this.shard(region).restart();
  }

  /** A region outage: its shard and its directory stop (others will declare it dead). */
  crashRegion(region: string): void {
    this.trace?.(`${region}: directory crashes`);
    this.crashShard(region);
    this.membership.crash(region);
  }

  restartRegion(region: string): void {
    this.trace?.(`${region}: directory restarts`);
    this.membership.start(region);
    this.restartShard(region);
  }

  // Clients.

  /** A new stock client in `room` with a unique clientID and an awareness state set. */
  addClient(room: string, userId: string, state: Record<string, unknown>): SimClient {
    let clientId = 1 + this.random.int(0x7fff_ffff);
    while (this.#clientIds.has(clientId)) clientId = 1 + this.random.int(0x7fff_ffff);
    this.#clientIds.add(clientId);
    const client = new SimClient(`c${this.clients.length}`, userId, room, clientId);
    client.stock.awareness.setLocalState(state);
    client.stock.takeOutbox();
    this.clients.push(client);
    return client;
  }

  connect(client: SimClient, region: string): boolean {
    this.trace?.(`${client.name} (${client.clientId}) connects to ${region}`);
    if (client.connection !== null || !this.isUp(region)) return false;
    this.shard(region).connect(client);
    return true;
  }

  disconnect(client: SimClient, clean: boolean): void {
    this.trace?.(`${client.name} disconnects (${clean ? "clean" : "abrupt"})`);
    const connection = client.connection;
    if (!connection) return;
    this.shard(connection.region).disconnect(client, clean);
  }

  /** The client types `text` at `index` (offline edits stay in its doc until it reconnects). */
  edit(client: SimClient, change: (doc: Y.Doc) => void, token?: string): void {
    change(client.stock.doc);
    const connection = client.connection;
    if (!connection) {
      client.stock.takeOutbox(); // no socket: the provider sends nothing; the next sync carries it
      return;
    }
    if (token !== undefined) client.applied.push(token);
    const probe = this.measuring ? this.#probeUpdate(client, connection.region) : null;
    this.shard(connection.region).pump();
    if (probe) this.#check(probe);
  }

  /** The client sets its awareness state (null: it leaves the awareness layer). */
  setState(client: SimClient, state: Record<string, unknown> | null): void {
    client.stock.awareness.setLocalState(state);
    const connection = client.connection;
    if (!connection) {
      client.stock.takeOutbox();
      return;
    }
    const probe =
      this.measuring && state !== null ? this.#probeState(client, connection.region, state) : null;
    this.shard(connection.region).pump();
    if (probe) this.#check(probe);
  }

  /** Destroys every client's Y.Doc and Awareness (the Awareness runs an interval). */
  destroy(): void {
    for (const client of this.clients) client.stock.destroy();
    for (const region of this.regions) {
      const shard = this.shard(region);
      for (const room of shard.rooms.values()) room.destroy();
    }
  }

  connectedClients(room?: string): SimClient[] {
    return this.clients.filter(
      (c) => c.connection !== null && (room === undefined || c.room === room),
    );
  }

  // Replica messages over RPC.

  /**
   * One RPC: the request crosses the network and is applied by the peer; its replies for third
   * regions go out from there, and those for the sender come back as the RPC's answer, are
   * applied by the sender, and their own replies followed up to MAX_CHAIN deep. A crashed peer,
   * a lost request or answer, or an answer later than rpcTimeoutMs: the call is lost.
   */
  rpc(from: string, { to, message }: Addressed, depth: number): void {
    const sender = this.shard(from);
    const life = sender.life;
    const sentAt = this.now;
    this.#count(message);
    this.#validate(from, message);
    const traced = this.#traced(message);
    if (traced) this.trace?.(`${from} -> ${to} ${message.room} ${message.type} ${traced}`);
    this.network.send(from, to, 0, () => {
      const peer = this.shard(to);
      if (traced)
        this.trace?.(`${from} -> ${to} ${message.type} arrives${peer.up ? "" : " (down)"}`);
      if (!peer.up) return;
      const replies = peer.deliver(structuredClone(message));
      peer.sendAll(
        replies.filter((r) => r.to !== from),
        1,
      );
      const answers = replies.filter((r) => r.to === from).map((r) => r.message);
      peer.pump();
      if (answers.length === 0) return;
      for (const answer of answers) {
        this.#count(answer);
        this.#validate(to, answer);
      }
      this.network.send(to, from, 0, () => {
        if (!sender.up || sender.life !== life) return;
        if (this.now - sentAt > this.timings.rpcTimeoutMs) return;
        for (const answer of answers) {
          const next = sender.deliver(structuredClone(answer));
          if (depth + 1 < MAX_CHAIN) sender.sendAll(next, depth + 1);
        }
        sender.pump();
      });
    });
  }

  /** Delivers a message as if `message.from` sent it, now, bypassing the network (forgeries). */
  inject(to: string, message: ReplicaMessage): Addressed[] {
    const shard = this.shard(to);
    const replies = shard.deliver(structuredClone(message));
    shard.pump();
    return replies;
  }

  /**
   * Messages must pass the RPC boundary's schema, as the shell parses them: every rarer kind
   * (leaving, outranked), and one in eight of the rest (parsing all costs a third of a run).
   */
  #validate(from: string, message: ReplicaMessage): void {
    const rare = message.type === "sync" && (message.leaving || message.outranked);
    if (!rare && this.traffic.messages % 8 !== 0) return;
    const parsed = replicaMessageSchema.safeParse(message);
    if (!parsed.success)
      this.anomaly(from, `${message.type} fails the RPC schema: ${parsed.error.message}`);
  }

  /** SIM_TRACE_CLIENT=id: the records of that clientID in a message, for the trace. */
  #traced(message: ReplicaMessage): string | null {
    const id = Number(process.env.SIM_TRACE_CLIENT);
    if (!this.trace || !id) return null;
    const records = message.members.filter((r) => r.clientId === id);
    if (records.length === 0 && message.type !== "sync") return null;
    const listed = records.map((r) => `${r.region}@${r.version}:${r.member?.status ?? r.reason}`);
    return message.type === "sync"
      ? `asOf ${message.asOf} [${listed.join(" ")}]`
      : listed.join(" ");
  }

  #count(message: ReplicaMessage): void {
    this.traffic.messages += 1;
    if (message.type === "batch") this.traffic.batches += 1;
    else this.traffic.syncs += 1;
    if (this.measuring) this.traffic.bytes += wireBytes(message); // costly: for the benchmark
  }

  /** Messages between regions: replica traffic and the network's own counts (gossip excluded). */
  stats(): { traffic: TrafficStats; network: NetworkStats; gossip: NetworkStats } {
    return {
      traffic: { ...this.traffic },
      network: { ...this.network.stats, bytes: this.traffic.bytes },
      gossip: { ...this.membership.network.stats },
    };
  }

  // The membership table as each shard reads it.

  /**
   * `region`'s table: regions that may serve (alive, suspect, or not yet known: configured and
   * joining) and regions declared dead. When the directory is down, the shell serves from every
   * configured region and keeps its last verdicts; so does this.
   */
  tableOf(region: string, lastDead: ReadonlySet<string>): TableView {
    const node = this.membership.node(region);
    if (!node) return { candidates: [...this.regions], dead: new Set(lastDead) };
    const candidates: string[] = [];
    const dead = new Set<string>();
    for (const r of this.regions) {
      const status = node.statusOf(r);
      if (status === undefined || status === "alive" || status === "suspect") candidates.push(r);
      if (status === "dead") dead.add(r);
    }
    return { candidates, dead };
  }

  // Observation.

  anomaly(region: string, what: string): void {
    this.anomalies.push({ at: this.now, region, what });
  }

  /** After every call into a room: who authored which member; probes that may have arrived. */
  observe(region: string, room: RoomReplica): void {
    // Members change only with a presence event, which moves the room's presence version.
    const key = `${region}|${room.name}`;
    if (this.#seenVersion.get(key) !== room.presenceVersion) {
      this.#seenVersion.set(key, room.presenceVersion);
      for (const member of room.localMembers()) this.authored.add(authorKey(member));
    }
    if (this.#open.length > 0) this.#checkProbes(region, room.name);
  }

  /** Invariant 4: every member a replica holds was authored by its own region's replica. */
  checkAuthorship(region: string): void {
    if (!this.checkAuthorshipOnAlarm) return;
    for (const room of this.shard(region).rooms.values()) {
      for (const member of room.members()) {
        if (!this.authored.has(authorKey(member)))
          this.anomaly(region, `member ${authorKey(member)} was never held by its own region`);
      }
    }
  }

  /**
   * The replicas of `room` that must agree: in every up region, those whose link is active, and
   * the home's and backup's (by the first up region's table), loaded if they are not (`load`;
   * otherwise an unloaded one is left out: it holds nothing in memory).
   */
  liveReplicas(room: string, load = true): Array<{ region: string; replica: RoomReplica }> {
    const up = this.upRegions();
    const first = up[0];
    const candidates = first === undefined ? [] : this.tableOf(first, new Set()).candidates;
    const { home, backup } = homeAndBackup(room, candidates);
    const live: Array<{ region: string; replica: RoomReplica }> = [];
    for (const region of up) {
      const shard = this.shard(region);
      const active = shard.links.get(room)?.active === true;
      if (!active && region !== home && region !== backup) continue;
      const replica = load ? shard.room(room) : shard.rooms.get(room);
      if (replica) live.push({ region, replica });
    }
    return live;
  }

  /** Replicas loaded but outside the replica set (dormant, not home or backup): may be stale by design. */
  restingReplicas(room: string): Array<{ region: string; replica: RoomReplica }> {
    const live = new Set(this.liveReplicas(room).map((r) => r.region));
    return this.upRegions()
      .filter((region) => !live.has(region))
      .flatMap((region) => {
        const replica = this.shard(region).rooms.get(room);
        return replica ? [{ region, replica }] : [];
      });
  }

  /** Everything any region ever stored for `room`: the union of every update applied anywhere. */
  everStored(room: string): Y.Doc {
    const doc = new Y.Doc();
    for (const region of this.regions) {
      const stored = this.shard(region).storage.load(room);
      if (stored.snapshot) Y.applyUpdate(doc, stored.snapshot);
      for (const update of stored.log) Y.applyUpdate(doc, update);
    }
    return doc;
  }

  // Probes (for the benchmark).

  #probeUpdate(client: SimClient, origin: string): Probe {
    const clock = Y.getState(client.stock.doc.store, client.clientId);
    const id = client.clientId;
    return this.#probe("update", client, origin, (c) => Y.getState(c.stock.doc.store, id) >= clock);
  }

  #probeState(client: SimClient, origin: string, state: Record<string, unknown>): Probe {
    const json = JSON.stringify(state);
    const id = client.clientId;
    return this.#probe(
      "awareness",
      client,
      origin,
      (c) => JSON.stringify(c.stock.awareness.getStates().get(id) ?? null) === json,
    );
  }

  #probe(
    kind: Probe["kind"],
    client: SimClient,
    origin: string,
    has: (c: SimClient) => boolean,
  ): Probe {
    const waiting = new Set(
      this.connectedClients(client.room)
        .map((c) => c.connection?.region)
        .filter((r): r is string => r !== undefined && r !== origin),
    );
    const probe: Probe = {
      kind,
      room: client.room,
      origin,
      at: this.now,
      reached: new Map(),
      waiting,
      has,
    };
    this.probes.push(probe);
    this.#open.push(probe);
    return probe;
  }

  #checkProbes(region: string, room: string): void {
    let finished = false;
    for (const probe of this.#open) {
      if (probe.room === room && probe.waiting.has(region)) this.#checkRegion(probe, region);
      if (probe.waiting.size === 0) finished = true;
    }
    if (finished) this.#open = this.#open.filter((p) => p.waiting.size > 0);
  }

  #check(probe: Probe): void {
    for (const region of [...probe.waiting]) this.#checkRegion(probe, region);
    if (probe.waiting.size === 0) this.#open = this.#open.filter((p) => p !== probe);
  }

  #checkRegion(probe: Probe, region: string): void {
    const clients = this.connectedClients(probe.room).filter(
      (c) => c.connection?.region === region,
    );
    if (clients.length === 0) {
      probe.waiting.delete(region); // no one left there to measure
      return;
    }
    if (clients.every(probe.has)) {
      probe.waiting.delete(region);
      probe.reached.set(region, this.now - probe.at);
    }
  }
}

function authorKey(member: Member): string {
  return `${member.region}|${member.clientId}|${member.userId}|${member.connectionId}`;
}

function earliest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** Bytes of a message as RPC carries it: binary fields at their length, the rest as JSON. */
export function wireBytes(message: ReplicaMessage): number {
  let binary = 0;
  const json = JSON.stringify(message, (_key, value: unknown) => {
    if (value instanceof Uint8Array) {
      binary += value.byteLength;
      return 0;
    }
    return value;
  });
  return json.length + binary;
}

/** The text of a Yjs document update or state. */
export function textOf(doc: Y.Doc): string {
  return doc.getText("t").toString();
}

/** The text a replica holds. */
export function replicaText(replica: RoomReplica): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, replica.encodeDocument());
  const text = textOf(doc);
  doc.destroy();
  return text;
}

/** A state vector as a sorted `client:clock` list, comparable as text. */
export function vectorText(vector: Uint8Array): string {
  return [...Y.decodeStateVector(vector)]
    .sort((a, b) => a[0] - b[0])
    .map(([client, clock]) => `${client}:${clock}`)
    .join(",");
}

/** JSON with object keys sorted: equal values give equal text whatever the key order. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
    );
  });
}

// The benchmark's scenario.

/** The room of `runLatencyScenario`. */
export const LATENCY_ROOM = "bench:room";

export interface LatencyScenario {
  seed: number;
  regions: readonly string[];
  rtt: RttMatrix;
  /** Stock clients per region, all in one room (`LATENCY_ROOM`). */
  clientsPerRegion: number;
  /** The regions with clients (default: all). */
  clientRegions?: readonly string[];
  /** How long clients type and move their cursors (virtual ms). */
  durationMs: number;
  /** Mean gap between two changes of one client (ms). */
  changeEveryMs: number;
  faults?: LinkFaults;
  replication?: Partial<ReplicationTimings>;
}

export interface LatencyReport {
  /** Per change: the virtual ms until the slowest other region's clients had it, by kind. */
  updateMs: number[];
  awarenessMs: number[];
  /** Per change and region: origin, target and virtual ms. */
  perRegion: Array<{ kind: Probe["kind"]; origin: string; region: string; ms: number }>;
  /** Changes some region never received before the run ended (should be none without loss). */
  unfinished: number;
  stats: ReturnType<ReplicationCluster["stats"]>;
  virtualMs: number;
}

/**
 * Runs a steady workload (clients typing and moving cursors in every region of one room) and
 * measures, per change, the virtual time from its local apply until every other region's
 * connected clients hold it, with the messages and bytes sent between regions meanwhile.
 */
/**
 * One change of the latency workload, number `n`: half the time `client` types a unique token
 * at the start of the text, otherwise it moves its cursor.
 */
export function randomChange(
  cluster: ReplicationCluster,
  client: SimClient,
  n: number,
  random: SimRandom,
): void {
  if (random.chance(0.5)) {
    const token = `[${client.name}.${n}]`;
    cluster.edit(client, (doc) => doc.getText("t").insert(0, token), token);
  } else {
    cluster.setState(client, { name: client.name, cursor: n });
  }
}

export function runLatencyScenario(scenario: LatencyScenario): LatencyReport {
  const cluster = new ReplicationCluster({
    seed: scenario.seed,
    regions: scenario.regions,
    rtt: scenario.rtt,
    ...(scenario.replication ? { replication: scenario.replication } : {}),
  });
  try {
    cluster.start();
    const room = LATENCY_ROOM;
    const random = cluster.random.fork("bench");
    for (const region of scenario.clientRegions ?? scenario.regions) {
      for (let i = 0; i < scenario.clientsPerRegion; i++) {
        const client = cluster.addClient(room, `${region}-${i}`, { name: `${region}-${i}` });
        cluster.connect(client, region);
      }
    }
    // Joins settle first: the replica set forms, then measurement starts with clean counters.
    cluster.runFor(2 * cluster.timings.antiEntropyMs);
    if (scenario.faults) cluster.setFaults(scenario.faults);
    const before = cluster.stats();
    const started = cluster.now;
    cluster.measuring = true;
    cluster.checkAuthorshipOnAlarm = false;
    const clients = cluster.connectedClients(room);
    const rate = clients.length / scenario.changeEveryMs;
    let n = 0;
    while (cluster.now - started < scenario.durationMs) {
      cluster.runFor(-Math.log(1 - random.next()) / rate);
      n += 1;
      randomChange(cluster, random.pick(clients), n, random);
    }
    cluster.measuring = false;
    cluster.runFor(5_000);
    const after = cluster.stats();
    const updateMs: number[] = [];
    const awarenessMs: number[] = [];
    const perRegion: LatencyReport["perRegion"] = [];
    let unfinished = 0;
    for (const probe of cluster.probes) {
      if (probe.waiting.size > 0) {
        unfinished += 1;
        continue;
      }
      const all = Math.max(0, ...probe.reached.values());
      (probe.kind === "update" ? updateMs : awarenessMs).push(all);
      for (const [region, ms] of probe.reached)
        perRegion.push({ kind: probe.kind, origin: probe.origin, region, ms });
    }
    return {
      updateMs,
      awarenessMs,
      perRegion,
      unfinished,
      stats: {
        traffic: diff(after.traffic, before.traffic),
        network: diff(after.network, before.network),
        gossip: diff(after.gossip, before.gossip),
      },
      virtualMs: scenario.durationMs,
    };
  } finally {
    cluster.destroy();
  }
}

function diff<T extends object>(after: T, before: T): T {
  const out = { ...after };
  for (const key of Object.keys(out) as Array<keyof T>) {
    const a = after[key];
    const b = before[key];
    if (typeof a === "number" && typeof b === "number") out[key] = (a - b) as T[keyof T];
  }
  return out;
}

/** One way a room's live replicas or clients disagree (invariant 1). */
export interface Disagreement {
  /** `replica`: no live replica to compare with (neither documents nor presence can agree). */
  kind: "document" | "presence" | "replica";
  message: string;
}

function vectorOf(replica: RoomReplica): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, replica.encodeDocument());
  const vector = vectorText(Y.encodeStateVector(doc));
  doc.destroy();
  return vector;
}

/**
 * Invariant 1 for one room: every live replica has the same document (state vector and text)
 * and the same members; every connected client has its replica's text, and exactly its
 * replica's present members' states in its awareness.
 */
export function disagreements(cluster: ReplicationCluster, room: string): Disagreement[] {
  const out: Disagreement[] = [];
  const live = cluster.liveReplicas(room, false);
  if (live.length === 0) return [{ kind: "replica", message: `${room}: no live replica` }];
  const views = live.map(({ region, replica }) => ({
    region,
    replica,
    vector: vectorOf(replica),
    text: replicaText(replica),
    members: [...replica.members()]
      .sort((a, b) => a.clientId - b.clientId)
      .map((m) => canonical(m)),
  }));
  const first = views[0] as (typeof views)[number];
  for (const view of views.slice(1)) {
    if (view.vector !== first.vector || view.text !== first.text)
      out.push({
        kind: "document",
        message: `${room}: ${view.region}'s document differs from ${first.region}'s`,
      });
    if (canonical(view.members) !== canonical(first.members))
      out.push({
        kind: "presence",
        message: `${room}: ${view.region}'s members differ from ${first.region}'s:\n  ${view.region}: ${view.members.join("\n    ")}\n  ${first.region}: ${first.members.join("\n    ")}`,
      });
  }
  for (const client of cluster.connectedClients(room)) {
    const region = client.connection?.region as string;
    const view = views.find((v) => v.region === region);
    if (!view) {
      out.push({
        kind: "replica",
        message: `${room}: ${client.name} is connected to ${region}, whose replica is not live`,
      });
      continue;
    }
    if (client.text !== view.text)
      out.push({
        kind: "document",
        message: `${room}: ${client.name}'s text differs from ${region}'s`,
      });
    const expected = new Map(
      view.replica
        .members()
        .filter((m) => m.status === "present")
        .map((m) => [m.clientId, canonical(m.state)]),
    );
    const held = new Map(
      [...client.stock.awareness.getStates()].map(([id, state]) => [id, canonical(state)]),
    );
    if (canonical([...expected].sort()) !== canonical([...held].sort()))
      out.push({
        kind: "presence",
        message: `${room}: ${client.name}@${region} awareness ${canonical([...held])} but ${region} has ${canonical([...expected])}`,
      });
  }
  return out;
}
