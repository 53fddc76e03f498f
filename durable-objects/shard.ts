import { DurableObject } from "cloudflare:workers";
import { configFromEnv, type HaloConfig } from "../src/config/config-schema";
import type { ConnectionId } from "../src/core/awareness-table";
import {
  type ConnectionAttachment,
  connectionAttachmentSchema,
} from "../src/core/connection-attachment";
import { RoomCache } from "../src/core/room-cache";
import {
  type Member,
  type RoomEffect,
  RoomReplica,
  type RoomSummary,
} from "../src/core/room-replica";
import { SHARD_HEADERS, shardUpgradeHeadersSchema } from "../src/http/room-request";
import { CloseCode } from "../src/protocol/close-codes";
import type { PersistenceStats } from "../src/storage/room-persistence";
import { SqliteRoomStorage } from "../src/storage/sqlite-room-storage";

/**
 * A shard: hosts many rooms, each a `RoomReplica` (the pure core). This class only adapts the
 * core to the platform: hibernatable WebSockets (one tag per room, the core's state for each
 * socket in its attachment), SQLite (through `SqliteRoomStorage`) and RPC for REST queries.
 * It starts no timer, so it hibernates whenever no frame is being handled.
 */
export class ShardDurableObject extends DurableObject<Env> {
  private readonly config: HaloConfig;
  private readonly storage: SqliteRoomStorage;
  private readonly rooms: RoomCache<RoomReplica>;
  /** Sockets by room and connection: rebuilt from `getWebSockets(room)` when a room loads after a wake-up. */
  private readonly sockets = new Map<string, Map<ConnectionId, WebSocket>>();
  /** Each socket's room and connection, so a frame does not deserialize the attachment; empty after a wake-up. */
  private readonly identities = new WeakMap<
    WebSocket,
    { room: string; connectionId: ConnectionId }
  >();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = configFromEnv(env);
    this.storage = new SqliteRoomStorage(ctx.storage, this.config.limits.maxRowBytes);
    this.rooms = new RoomCache(this.config.limits);
  }

  /** The WebSocket upgrade, forwarded by the Worker with the room and region it resolved. */
  override async fetch(request: Request): Promise<Response> {
    const parsed = shardUpgradeHeadersSchema.safeParse({
      room: request.headers.get(SHARD_HEADERS.room),
      region: request.headers.get(SHARD_HEADERS.region),
      identity: request.headers.get(SHARD_HEADERS.identity),
    });
    if (!parsed.success) {
      return Response.json(
        { error: { code: "bad_shard_request", message: "missing or invalid room/region headers" } },
        { status: 400 },
      );
    }
    const { room: name, region, identity } = parsed.data;
    const room = this.room(name);
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [name]);
    const connectionId = crypto.randomUUID();
    this.socketsOf(name).set(connectionId, server);
    this.identities.set(server, { room: name, connectionId });
    this.run(room, room.connect({ connectionId, region, joinedAt: Date.now(), identity }));
    if (identity.expiresAt !== null) await this.expireNoLaterThan(identity.expiresAt);
    return new Response(null, { status: 101, webSocket: client });
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const found = this.locate(ws);
    if (!found) return;
    const { room, connectionId } = found;
    if (typeof message === "string") {
      const reason = "text frames are not part of the protocol; send binary y-websocket messages";
      this.run(room, room.reject(connectionId, CloseCode.UnsupportedData, reason));
      return;
    }
    this.run(room, room.receive(connectionId, new Uint8Array(message), Date.now()));
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    this.onSocketGone(ws);
    // Complete the closing handshake; 1005/1006 are reserved and may not be echoed.
    this.closeSocket(ws, code === 1005 || code === 1006 ? CloseCode.Normal : code, reason);
  }

  override webSocketError(ws: WebSocket): void {
    this.onSocketGone(ws);
  }

  /** The alarm, the shard's only timer: closes connections whose token expired. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    let next: number | null = null;
    const rooms = new Set<string>();
    for (const ws of this.ctx.getWebSockets()) {
      const attachment = readAttachment(ws);
      if (attachment?.identity.expiresAt != null) rooms.add(attachment.room);
    }
    for (const name of rooms) {
      const room = this.room(name);
      const { effects, nextExpiry } = room.expire(now);
      this.run(room, effects);
      if (nextExpiry !== null && (next === null || nextExpiry < next)) next = nextExpiry;
    }
    if (next !== null) await this.ctx.storage.setAlarm(next);
  }

  // RPC, for the REST endpoints and operators.

  /** Shard-level figures: how many rooms are loaded and how many sockets are open. */
  stats(): { loadedRooms: number; sockets: number } {
    return { loadedRooms: this.rooms.size, sockets: this.ctx.getWebSockets().length };
  }

  summary(name: string): RoomSummary {
    return this.room(name).summary();
  }

  storageStats(name: string): PersistenceStats {
    return this.room(name).storageStats();
  }

  presence(name: string): Member[] {
    return this.room(name).members();
  }

  document(name: string, since: Uint8Array | null): Uint8Array {
    return this.room(name).encodeDocument(since ?? undefined);
  }

  private async expireNoLaterThan(expiresAt: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || expiresAt < current) await this.ctx.storage.setAlarm(expiresAt);
  }

  private onSocketGone(ws: WebSocket): void {
    const found = this.locate(ws);
    if (!found) return;
    this.socketsOf(found.room.name).delete(found.connectionId);
    this.run(found.room, found.room.disconnect(found.connectionId));
    this.evictIdleRooms();
  }

  /** The loaded room, loading it from SQLite (and its sockets from their attachments) when needed. */
  private room(name: string): RoomReplica {
    const cached = this.rooms.get(name);
    if (cached) return cached;
    const room = RoomReplica.open(name, this.storage, this.config.limits, Date.now());
    const sockets = this.socketsOf(name);
    for (const ws of this.ctx.getWebSockets(name)) {
      const attachment = readAttachment(ws);
      if (!attachment) continue;
      room.restore(attachment);
      sockets.set(attachment.connectionId, ws);
      this.identities.set(ws, { room: name, connectionId: attachment.connectionId });
    }
    this.evictIdleRooms(); // before inserting, so the room being opened is never the one unloaded
    this.rooms.set(name, room);
    return room;
  }

  private locate(ws: WebSocket): { room: RoomReplica; connectionId: ConnectionId } | undefined {
    const known = this.identities.get(ws);
    if (known) return { room: this.room(known.room), connectionId: known.connectionId };
    const attachment = readAttachment(ws);
    if (!attachment) {
      this.closeSocket(ws, CloseCode.InternalError, "connection state lost; reconnect");
      return undefined;
    }
    return { room: this.room(attachment.room), connectionId: attachment.connectionId };
  }

  private run(room: RoomReplica, effects: RoomEffect[]): void {
    const sockets = this.socketsOf(room.name);
    for (const effect of effects) {
      switch (effect.kind) {
        case "send":
          trySend(sockets.get(effect.connectionId), effect.frame);
          break;
        case "broadcast":
          for (const [connectionId, ws] of sockets) {
            if (connectionId !== effect.except) trySend(ws, effect.frame);
          }
          break;
        case "attach":
          sockets.get(effect.connectionId)?.serializeAttachment(effect.attachment);
          break;
        case "close": {
          const ws = sockets.get(effect.connectionId);
          sockets.delete(effect.connectionId);
          if (ws) this.closeSocket(ws, effect.code, effect.reason);
          break;
        }
        case "fail-room":
          for (const ws of sockets.values())
            this.closeSocket(ws, CloseCode.InternalError, effect.reason);
          this.sockets.delete(room.name);
          this.rooms.delete(room.name);
          room.destroy();
          return;
      }
    }
  }

  private evictIdleRooms(): void {
    for (const room of this.rooms.evict()) {
      this.sockets.delete(room.name);
      room.destroy();
    }
  }

  private socketsOf(name: string): Map<ConnectionId, WebSocket> {
    let sockets = this.sockets.get(name);
    if (!sockets) {
      sockets = new Map();
      this.sockets.set(name, sockets);
    }
    return sockets;
  }

  private closeSocket(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code, reason);
    } catch {
      // Already closed: nothing left to tell the client.
    }
  }
}

function readAttachment(ws: WebSocket): ConnectionAttachment | undefined {
  const parsed = connectionAttachmentSchema.safeParse(ws.deserializeAttachment());
  return parsed.success ? parsed.data : undefined;
}

function trySend(ws: WebSocket | undefined, frame: Uint8Array): void {
  try {
    ws?.send(frame);
  } catch {
    // The socket is closing; its close handler cleans up.
  }
}
