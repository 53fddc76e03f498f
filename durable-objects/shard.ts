import { DurableObject } from "cloudflare:workers";
import { verifierFor } from "../src/auth/configured-verifier";
import { configFromEnv, type HaloConfig } from "../src/config/config-schema";
import type { Region } from "../src/config/regions";
import type { ConnectionId } from "../src/core/awareness-table";
import type { ConnectionAttachment } from "../src/core/connection-attachment";
import { RoomCache } from "../src/core/room-cache";
import type { PresenceSource } from "../src/core/room-replica";
import { type RoomEffect, RoomReplica, type RoomSummary } from "../src/core/room-replica";
import { roomSettings } from "../src/core/room-settings";
import type { Secrets } from "../src/http/app-env";
import { SHARD_HEADERS, shardUpgradeHeadersSchema } from "../src/http/room-request";
import type { Member, PresenceEvent, PresenceSnapshot } from "../src/presence/presence-schema";
import type { HistoryQuery } from "../src/presence/presence-store";
import { deliverDue } from "../src/presence/webhook-sender";
import { CloseCode } from "../src/protocol/close-codes";
import { PING_FRAME, PONG_FRAME } from "../src/protocol/liveness";
import { type BusyRoom, busiestRooms } from "../src/rebalance/busiest-rooms";
import type { RebalanceReport } from "../src/rebalance/handoff-schema";
import { RoomMoved, type ShardMover, unlessMoved } from "../src/rebalance/shard-mover";
import { replicaMessageSchema } from "../src/replication/replication-schema";
import type { PersistenceStats } from "../src/storage/room-persistence";
import { SqlitePresenceStore } from "../src/storage/sqlite-presence-store";
import { SqliteRoomStorage } from "../src/storage/sqlite-room-storage";
import { FanoutTimers } from "./fanout-timers";
import { closeSocket, RoomSockets, readAttachment } from "./room-sockets";
import { ShardLoad } from "./shard-load";
import { type ShardMoves, shardMover } from "./shard-moves";
import { ShardReplication } from "./shard-replication";
import { TokenRefresh } from "./token-refresh";

/**
 * A shard: hosts many rooms, each a `RoomReplica` (the pure core). This class only adapts the
 * core to the platform: hibernatable WebSockets (one tag per room, the core's state for each
 * socket in its attachment), SQLite (document and presence stores), the alarm (its only
 * timer) and RPC for REST queries. It hibernates whenever no frame is being handled.
 */
export class ShardDurableObject extends DurableObject<Env> {
  private readonly config: HaloConfig;
  private readonly storage: SqliteRoomStorage;
  private readonly presenceStore: SqlitePresenceStore;
  private readonly rooms: RoomCache<RoomReplica>;
  private readonly sockets = new RoomSockets();
  private readonly load: ShardLoad;
  private readonly replication: ShardReplication;
  private readonly tokens: TokenRefresh;
  private readonly fanout = new FanoutTimers();
  /** Moving rooms between this region's shards (src/rebalance), and its RPC glue. */
  private readonly moves: ShardMoves;
  private readonly mover: ShardMover;
  /** The alarm as this instance last set or read it; undefined until known (after a wake-up). */
  private alarmAt: number | null | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = configFromEnv(env);
    // Liveness without wake-ups: the platform itself answers a `ping` text frame with `pong`,
    // even while the object hibernates, and never delivers it here; a client's dead-connection
    // check costs no wake-up and no duration. Other text frames still reach webSocketMessage.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_FRAME, PONG_FRAME));
    const { limits, presence } = this.config;
    this.storage = new SqliteRoomStorage(ctx.storage, limits.maxRowBytes);
    this.presenceStore = new SqlitePresenceStore(ctx.storage, {
      retentionMs: presence.historyRetentionMs,
      maxEvents: presence.maxHistoryEvents,
    });
    this.rooms = new RoomCache(limits);
    this.load = new ShardLoad(ctx, env.DIRECTORY, this.config.membership.loadReportMs);
    this.replication = new ShardReplication({
      ctx,
      env,
      config: this.config,
      region: () => this.load.address()?.region,
      room: (name) => this.room(name),
      loaded: (name) => this.rooms.peek(name),
      loadedNames: () => this.rooms.names(),
      run: (room, effects) => this.run(room, effects),
      wake: (at) => this.wakeNoLaterThan(at),
    });
    this.moves = shardMover({
      ctx,
      env,
      config: this.config,
      address: () => this.load.address(),
      table: (now, fresh) => this.replication.table(now, fresh),
      storage: this.storage,
      presenceStore: this.presenceStore,
      loaded: (name) => this.rooms.peek(name),
      unload: (name) => this.unloadRoom(name),
      run: (room, effects) => this.run(room, effects),
      wake: (at) => this.wakeNoLaterThan(at),
    });
    this.mover = this.moves.mover;
    this.tokens = new TokenRefresh({
      auth: this.config.auth,
      verifier: () => verifierFor(env as Env & Secrets, this.config),
      room: (name) => this.room(name),
      run: (room, effects) => this.run(room, effects),
    });
  }

  /** The WebSocket upgrade, forwarded by the Worker with the room and region it resolved. */
  override async fetch(request: Request): Promise<Response> {
    const parsed = shardUpgradeHeadersSchema.safeParse({
      room: request.headers.get(SHARD_HEADERS.room),
      region: request.headers.get(SHARD_HEADERS.region),
      identity: request.headers.get(SHARD_HEADERS.identity),
      presence: request.headers.get(SHARD_HEADERS.presence),
      shard: request.headers.get(SHARD_HEADERS.shard),
      epoch: request.headers.get(SHARD_HEADERS.epoch),
      forwarded: request.headers.get(SHARD_HEADERS.forwarded),
    });
    if (!parsed.success) {
      return Response.json(
        { error: { code: "bad_shard_request", message: "missing or invalid room/region headers" } },
        { status: 400 },
      );
    }
    const { room: name, region, identity, presence, shard, epoch, forwarded } = parsed.data;
    this.load.remember(region, shard);
    const misrouted = await this.moves.misrouted(request, { room: name, region, epoch, forwarded });
    if (misrouted) return misrouted;
    const room = await this.room(name);
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [name]);
    const connectionId = crypto.randomUUID();
    this.sockets.add(name, connectionId, server);
    const info = {
      connectionId,
      region,
      joinedAt: Date.now(),
      identity,
      presenceEvents: presence === "events",
    };
    await this.run(room, room.connect(info));
    await this.replication.afterLocal(room, Date.now());
    await this.wakeNoLaterThan(this.load.changed(Date.now(), () => this.stats()));
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const found = await this.locate(ws);
    if (!found) return;
    const { room, connectionId } = found;
    const wake = this.load.message(room.name, Date.now(), () => this.stats());
    if (wake !== null) await this.wakeNoLaterThan(wake);
    if (typeof message === "string") {
      const reason = "text frames are not part of the protocol; send binary y-websocket messages";
      await this.run(
        room,
        room.reject(connectionId, CloseCode.UnsupportedData, reason, Date.now()),
      );
      return;
    }
    const effects = room.receive(connectionId, new Uint8Array(message), Date.now());
    await this.run(room, effects);
    await this.tokens.handle(room.name, effects); // auth.refresh: checked asynchronously
    await this.replication.afterLocal(room, Date.now());
  }

  override async webSocketClose(
    ws: WebSocket,
    code: number,
    reason: string,
    wasClean: boolean,
  ): Promise<void> {
    // Only a deliberate goodbye is clean for presence: browsers send 1001 on tab close, apps
    // 1000; anything else (1005 from a bare close(), 1006 from a dropped line) gets the grace.
    await this.onSocketGone(ws, wasClean && (code === 1000 || code === 1001));
    // Complete the closing handshake; 1005/1006 are reserved and may not be echoed.
    closeSocket(ws, code === 1005 || code === 1006 ? CloseCode.Normal : code, reason);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.onSocketGone(ws, false);
  }

  /** The alarm, the shard's only timer: token expiry, the end of disconnect graces, presence history writes. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.alarmAt = null; // this alarm has fired
    // Work a room asks for while this runs (a webhook queued now, say) may set an earlier
    // alarm; then the alarm simply runs again.
    await this.wakeNoLaterThan(await this.runDueWork(now));
  }

  /** Everything due by `now` in every room that may have work; returns when work is next due. */
  private async runDueWork(now: number): Promise<number | null> {
    const names = new Set<string>([...this.rooms.names(), ...this.presenceStore.roomsInGrace()]);
    for (const ws of this.ctx.getWebSockets()) {
      const attachment = readAttachment(ws);
      if (attachment?.identity.expiresAt != null) names.add(attachment.room);
    }
    let next: number | null = null;
    for (const name of names) {
      const room = await unlessMoved(this.room(name));
      if (!room) continue; // moved to another shard, which runs its graces
      const { effects, nextDeadline } = room.expire(now);
      await this.run(room, effects);
      await this.replication.afterLocal(room, now); // graces that ended are changes for peers
      if (nextDeadline !== null && (next === null || nextDeadline < next)) next = nextDeadline;
    }
    const webhook = this.config.presence.webhook;
    const secret = (this.env as Env & Secrets).HALO_WEBHOOK_SECRET;
    if (webhook && secret) {
      await deliverDue(this.presenceStore, webhook, secret, {
        nowMs: () => Date.now(),
        random: Math.random,
        fetch: (url, init) => fetch(url, init),
        log: (message) => console.warn(message),
      });
      const due = this.presenceStore.nextDue();
      if (due !== null && (next === null || due < next)) next = due;
    }
    const report = this.load.onAlarm(now, () => this.stats());
    if (report !== null && (next === null || report < next)) next = report;
    const replication = await this.replication.onAlarm(now);
    if (replication !== null && (next === null || replication < next)) next = replication;
    const moves = await this.mover.onAlarm(now);
    if (moves !== null && (next === null || moves < next)) next = moves;
    this.evictIdleRooms(); // replicas that went dormant may be unloaded now
    return next;
  }

  // RPC, for the REST endpoints and operators.

  /** Shard-level figures: how many rooms are loaded and how many sockets are open. */
  stats(): ShardStats {
    return { loadedRooms: this.rooms.size, sockets: this.ctx.getWebSockets().length };
  }

  /** `stats()`, with the rooms that had the most frames and the most sockets (admin: a hot shard's rooms). */
  busiest(): ShardStats & { busiestRooms: BusyRoom[] } {
    const connections = this.rooms
      .names()
      .map((room) => ({ room, connections: this.rooms.peek(room)?.connectionCount ?? 0 }));
    return { ...this.stats(), busiestRooms: busiestRooms(this.load.busiestRooms(), connections) };
  }

  // Each room call is passed to the room's owner when a resize moved the room away from here
  // (a caller routed by an older layout); `epoch` is the layout the caller routed by.

  async summary(name: string, epoch = 0): Promise<RoomSummary> {
    const owner = await this.moves.owner(name, epoch);
    return owner ? owner.stub.summary(name, owner.epoch) : (await this.room(name)).summary();
  }

  async storageStats(name: string, epoch = 0): Promise<PersistenceStats> {
    const owner = await this.moves.owner(name, epoch);
    if (owner) return owner.stub.storageStats(name, owner.epoch);
    return (await this.room(name)).storageStats();
  }

  async presence(name: string, epoch = 0): Promise<PresenceSnapshot> {
    const owner = await this.moves.owner(name, epoch);
    if (owner) return owner.stub.presence(name, owner.epoch);
    return (await this.room(name)).presenceSnapshot();
  }

  async members(name: string, epoch = 0): Promise<Member[]> {
    const owner = await this.moves.owner(name, epoch);
    return owner ? owner.stub.members(name, owner.epoch) : (await this.room(name)).members();
  }

  /** The room's presence as this replica holds it, with the regions it came from and how fresh each is. */
  async presenceView(
    name: string,
    epoch = 0,
  ): Promise<{ snapshot: PresenceSnapshot; sources: PresenceSource[]; at: number }> {
    const owner = await this.moves.owner(name, epoch);
    if (owner) return owner.stub.presenceView(name, owner.epoch);
    const room = await this.room(name);
    const at = Date.now();
    return { snapshot: room.presenceSnapshot(), sources: room.presenceSources(at), at };
  }

  /**
   * `?consistency=all`: this replica's view, and the members each of `regions` owns, asked of
   * their own shards from here (the nearest replica gathers, one hop to each region).
   */
  async presenceAll(
    name: string,
    regions: Region[],
    epoch = 0,
  ): Promise<{
    local: { snapshot: PresenceSnapshot; sources: PresenceSource[]; at: number };
    answers: Array<{ region: Region; members: Member[] | null }>;
  }> {
    const owner = await this.moves.owner(name, epoch);
    if (owner) return owner.stub.presenceAll(name, regions, owner.epoch);
    const timeout = this.config.replication.queryTimeoutMs;
    const answers = await this.replication.askOwnMembers(name, regions, timeout);
    return { local: await this.presenceView(name), answers };
  }

  /** The members this region owns (`?consistency=all` asks each region for its own). */
  async localMembers(name: string, epoch = 0): Promise<Member[]> {
    const owner = await this.moves.owner(name, epoch);
    if (owner) return owner.stub.localMembers(name, owner.epoch);
    return (await this.room(name)).localMembers();
  }

  /** A peer region's replica message for one of this shard's rooms; the answers go back to it. */
  async replicate(region: Region, index: number, message: unknown, epoch = 0): Promise<unknown[]> {
    this.load.remember(region, index);
    const parsed = replicaMessageSchema.parse(message);
    const owner = await this.moves.owner(parsed.room, epoch);
    if (owner) return owner.stub.replicate(region, owner.index, parsed, owner.epoch);
    return this.replication.receive(parsed, Date.now());
  }

  async presenceHistory(
    name: string,
    query: HistoryQuery,
    epoch = 0,
  ): Promise<{ version: number; events: PresenceEvent[] }> {
    const owner = await this.moves.owner(name, epoch);
    if (owner) return owner.stub.presenceHistory(name, query, owner.epoch);
    const version = (await this.room(name)).presenceVersion;
    return { version, events: this.presenceStore.history(name, query) };
  }

  async document(name: string, since: Uint8Array | null, epoch = 0): Promise<Uint8Array> {
    const owner = await this.moves.owner(name, epoch);
    if (owner) return owner.stub.document(name, since, owner.epoch);
    return (await this.room(name)).encodeDocument(since ?? undefined);
  }

  // Moving rooms between this region's shards (shard-moves.ts; src/rebalance/room-handoff.ts).

  async handOff(
    region: Region,
    index: number,
    room: string,
    epoch: number,
    stateVector: Uint8Array,
  ): Promise<unknown> {
    this.load.remember(region, index);
    return this.mover.handOff(room, epoch, stateVector);
  }

  async release(region: Region, index: number, room: string, vector: Uint8Array): Promise<boolean> {
    this.load.remember(region, index);
    return this.mover.release(room, vector);
  }

  async adopt(region: Region, index: number, room: string, from: number): Promise<boolean> {
    this.load.remember(region, index);
    return this.mover.adopt(room, from, Date.now());
  }

  async rebalance(region: Region, index: number): Promise<RebalanceReport> {
    this.load.remember(region, index);
    return this.mover.rebalance(Date.now());
  }

  private async onSocketGone(ws: WebSocket, clean: boolean): Promise<void> {
    const found = await this.locate(ws);
    if (!found) return;
    this.sockets.remove(found.room.name, found.connectionId);
    await this.run(found.room, found.room.disconnect(found.connectionId, clean, Date.now()));
    await this.replication.afterLocal(found.room, Date.now());
    this.evictIdleRooms();
    await this.wakeNoLaterThan(this.load.changed(Date.now(), () => this.stats()));
  }

  /** The loaded room, loading it from SQLite (and its sockets from their attachments) when needed. */
  private async room(name: string): Promise<RoomReplica> {
    const cached = this.rooms.get(name);
    if (cached) return cached;
    await this.mover.beforeOpen(name, Date.now());
    const raced = this.rooms.get(name); // another call opened it while the pull waited
    if (raced) return raced;
    // Never a second copy here: a late socket event or a stale caller finds the room gone.
    if (this.mover.movedOut(name) || (await this.mover.elsewhere(name, Date.now())) !== null)
      throw new RoomMoved(name);
    const restored: ConnectionAttachment[] = [];
    for (const ws of this.ctx.getWebSockets(name)) {
      const attachment = readAttachment(ws);
      if (!attachment) continue;
      restored.push(attachment);
      this.sockets.add(name, attachment.connectionId, ws);
    }
    const { room, effects } = RoomReplica.open(
      name,
      {
        storage: this.storage,
        presenceStore: this.presenceStore,
        ...roomSettings(name, this.config, this.load.address()?.region),
      },
      Date.now(),
      restored,
      this.mover.takeArrivals(name),
    );
    this.evictIdleRooms(); // before inserting, so the room being opened is never the one unloaded
    this.rooms.set(name, room);
    await this.run(room, effects);
    await this.replication.roomLoaded(room, Date.now());
    return room;
  }

  private async locate(
    ws: WebSocket,
  ): Promise<{ room: RoomReplica; connectionId: ConnectionId } | undefined> {
    const known = this.sockets.identify(ws) ?? readAttachment(ws);
    if (!known) {
      closeSocket(ws, CloseCode.InternalError, "connection state lost; reconnect");
      return undefined;
    }
    if (this.mover.movedOut(known.room)) {
      // Handed to another shard: a frame here is not applied (the client resyncs there).
      closeSocket(ws, CloseCode.Moved, "moved: the room moved to another shard; reconnect");
      return undefined;
    }
    try {
      return { room: await this.room(known.room), connectionId: known.connectionId };
    } catch (error) {
      if (!(error instanceof RoomMoved)) throw error;
      closeSocket(ws, CloseCode.Moved, "moved: the room moved to another shard; reconnect");
      return undefined;
    }
  }

  /** Carries out a room's effects; the alarm is moved earlier when the room has work due. */
  private async run(room: RoomReplica, effects: RoomEffect[]): Promise<void> {
    if (this.sockets.carryOut(room.name, effects) === "failed") {
      this.rooms.delete(room.name);
      room.destroy();
      return;
    }
    const fanoutAt = room.takeFanoutAt();
    if (fanoutAt !== null)
      this.fanout.schedule(room.name, fanoutAt, (name) => this.flushFanout(name));
    const wakeAt = room.takeWakeAt();
    if (wakeAt !== null) await this.wakeNoLaterThan(wakeAt);
  }

  /** The end of a room's coalescing window; a room unloaded meanwhile wrote its batch already. */
  private flushFanout(name: string): void {
    const room = this.rooms.peek(name);
    if (!room) return;
    this.ctx.waitUntil(this.run(room, room.flushFanout(Date.now())));
  }

  private async wakeNoLaterThan(wanted: number | null): Promise<void> {
    if (wanted === null) return;
    // The platform refuses alarms past 2189; the token lifetime cap keeps real deadlines far below.
    const at = Math.min(wanted, LATEST_ALARM_MS);
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  /** A room handed to another shard: its batch goes to its peers, what it holds is written, memory freed. */
  private unloadRoom(name: string): void {
    this.replication.handOver(name, Date.now());
    const room = this.rooms.peek(name);
    if (!room) return;
    this.rooms.delete(name);
    this.sockets.forget(name);
    room.unload();
  }

  private evictIdleRooms(): void {
    for (const room of this.rooms.evict((name) => this.replication.inUse(name))) {
      this.sockets.forget(room.name);
      room.unload();
    }
  }
}

type ShardStats = { loadedRooms: number; sockets: number };

/** 2100-01-01: later than any deadline a room may have, earlier than the platform's limit. */
const LATEST_ALARM_MS = Date.UTC(2100, 0, 1);
