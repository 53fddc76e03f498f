/**
 * An in-process stand-in for the shard's sockets, so the SDK's real classes run against the
 * real room core (`RoomReplica`) with virtual time: every frame crosses a 1 ms hop on
 * vitest's fake timers, the platform's `ping`/`pong` auto-response included. Faults: the
 * server refusing connections, a socket dropped (1006), a route gone silent.
 */

import type { SocketLike, WebSocketConstructor } from "../../src/client/room-connection";
import { excludes, type RoomEffect, RoomReplica } from "../../src/core/room-replica";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import { PING_FRAME, PONG_FRAME } from "../../src/protocol/liveness";
import { MemoryRoomStorage } from "../../src/storage/memory-room-storage";
import { TEST_ROOM_LIMITS } from "./room-limits";

const HOP_MS = 1;

export class HubSocket implements SocketLike {
  binaryType = "blob";
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly connectionId: string;
  readonly room: string;
  readonly params: URLSearchParams;
  /** Frames and texts this socket sent, in order. */
  readonly sent: Array<Uint8Array | string> = [];
  /** When the SDK created it (virtual ms). */
  readonly createdAt = Date.now();

  constructor(
    private readonly hub: SocketHub,
    url: string,
  ) {
    const parsed = new URL(url);
    this.room = decodeURIComponent(parsed.pathname.split("/").pop() ?? "");
    this.params = parsed.searchParams;
    this.connectionId = `conn-${hub.sockets.length + 1}`;
    hub.opened(this);
  }

  send(data: Uint8Array | string): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(typeof data === "string" ? data : data.slice());
    this.hub.fromClient(this, data);
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    this.hub.clientClosed(this, code, reason);
  }
}

export class SocketHub {
  readonly sockets: HubSocket[] = [];
  readonly rooms = new Map<string, RoomReplica>();
  /** While true, new sockets fail as if the server were unreachable (close 1006). */
  refuse = false;
  private readonly silent = new Set<HubSocket>();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly graceMs = 5_000) {
    // The shard's alarm: graces and expiries, run as often as a test could notice.
    this.timer = setInterval(() => {
      for (const room of this.rooms.values()) this.apply(room, room.expire(Date.now()).effects);
    }, 50);
  }

  /** The WebSocket class the SDK is given. */
  get WebSocket(): WebSocketConstructor {
    const hub = this;
    return class extends HubSocket {
      constructor(url: string) {
        super(hub, url);
      }
    };
  }

  room(name: string): RoomReplica {
    let room = this.rooms.get(name);
    if (!room) {
      room = RoomReplica.open(
        name,
        {
          storage: new MemoryRoomStorage(),
          presenceStore: new MemoryPresenceStore(),
          limits: TEST_ROOM_LIMITS,
          presence: { graceMs: this.graceMs, historyFlushMs: 100 },
        },
        Date.now(),
      ).room;
      this.rooms.set(name, room);
    }
    return room;
  }

  /** The socket drops without a close frame (the server sees an unclean close). */
  drop(socket: HubSocket): void {
    if (socket.readyState >= 2) return;
    socket.readyState = 3;
    this.apply(
      this.room(socket.room),
      this.room(socket.room).disconnect(socket.connectionId, false, Date.now()),
    );
    this.later(() => socket.onclose?.({ code: 1006, reason: "" }));
  }

  /** Nothing crosses this socket any more, either way, and no one notices (a dead route). */
  silence(socket: HubSocket): void {
    this.silent.add(socket);
  }

  /** Open sockets of a room, oldest first. */
  open(room: string): HubSocket[] {
    return this.sockets.filter((s) => s.room === room && s.readyState === 1);
  }

  destroy(): void {
    clearInterval(this.timer);
    for (const room of this.rooms.values()) room.destroy();
  }

  opened(socket: HubSocket): void {
    this.sockets.push(socket);
    this.later(() => {
      if (socket.readyState !== 0) return;
      if (this.refuse) {
        socket.readyState = 3;
        socket.onclose?.({ code: 1006, reason: "" });
        return;
      }
      socket.readyState = 1;
      socket.onopen?.({});
      const userId = socket.params.get("user") ?? socket.connectionId;
      const room = this.room(socket.room);
      this.apply(
        room,
        room.connect({
          connectionId: socket.connectionId,
          region: socket.params.get("region") ?? "wnam",
          joinedAt: Date.now(),
          identity: { userId, rights: ["read", "write", "presence"], expiresAt: null },
          presenceEvents: socket.params.get("presence") === "events",
        }),
      );
    });
  }

  fromClient(socket: HubSocket, data: Uint8Array | string): void {
    if (this.silent.has(socket)) return;
    if (typeof data === "string") {
      // The platform's auto-response: answered without the room seeing it.
      if (data === PING_FRAME) this.later(() => this.deliver(socket, PONG_FRAME));
      return;
    }
    const frame = data.slice();
    this.later(() => {
      // Frames sent before close() still arrive, as on a real socket.
      if (socket.readyState === 3) return;
      const room = this.room(socket.room);
      this.apply(room, room.receive(socket.connectionId, frame, Date.now()));
    });
  }

  clientClosed(socket: HubSocket, code: number, reason: string): void {
    this.later(() => {
      socket.readyState = 3;
      const room = this.room(socket.room);
      // A close frame that arrives is a clean close (the grace is for drops).
      if (!this.silent.has(socket))
        this.apply(room, room.disconnect(socket.connectionId, true, Date.now()));
      socket.onclose?.({ code, reason });
    });
  }

  private apply(room: RoomReplica, effects: RoomEffect[]): void {
    const of = (id: string) =>
      this.sockets.find((s) => s.connectionId === id && s.room === room.name);
    for (const effect of effects) {
      switch (effect.kind) {
        case "send": {
          const target = of(effect.connectionId);
          if (target) this.later(() => this.deliver(target, effect.frame));
          break;
        }
        case "broadcast":
          for (const target of this.open(room.name))
            if (!excludes(effect.except, target.connectionId))
              this.later(() => this.deliver(target, effect.frame));
          break;
        case "multicast":
          for (const id of effect.connectionIds) {
            const target = of(id);
            if (target) this.later(() => this.deliver(target, effect.frame));
          }
          break;
        case "close": {
          const target = of(effect.connectionId);
          if (!target || target.readyState >= 2) break;
          target.readyState = 3;
          this.apply(room, room.disconnect(effect.connectionId, true, Date.now()));
          this.later(() => target.onclose?.({ code: effect.code, reason: effect.reason }));
          break;
        }
        default:
          break; // attachments, token checks: the shell's business, not the SDK's
      }
    }
  }

  private deliver(socket: HubSocket, data: Uint8Array | string): void {
    if (socket.readyState !== 1 || this.silent.has(socket)) return;
    const payload = typeof data === "string" ? data : data.slice().buffer;
    socket.onmessage?.({ data: payload });
  }

  private later(work: () => void): void {
    setTimeout(work, HOP_MS);
  }
}
