import type { ConnectionId } from "../src/core/awareness-table";
import {
  type ConnectionAttachment,
  fromStoredAttachment,
  toStoredAttachment,
} from "../src/core/connection-attachment";
import { excludes, type RoomEffect } from "../src/core/room-replica";
import { CloseCode } from "../src/protocol/close-codes";

/**
 * The shard's hibernatable sockets, by room and connection, and the one place that carries out
 * a room core's effects on them. In memory only: after a wake-up a room's sockets are adopted
 * again from `getWebSockets(room)` and their attachments when the room loads.
 */
export class RoomSockets {
  private readonly byRoom = new Map<string, Map<ConnectionId, WebSocket>>();
  /** Each socket's room and connection, so a frame does not deserialize the attachment. */
  private readonly identities = new WeakMap<
    WebSocket,
    { room: string; connectionId: ConnectionId }
  >();

  add(room: string, connectionId: ConnectionId, ws: WebSocket): void {
    this.of(room).set(connectionId, ws);
    this.identities.set(ws, { room, connectionId });
  }

  remove(room: string, connectionId: ConnectionId): void {
    this.byRoom.get(room)?.delete(connectionId);
  }

  /** Forgets a room's sockets (the room was unloaded; the sockets themselves stay open). */
  forget(room: string): void {
    this.byRoom.delete(room);
  }

  /** The room and connection of a socket this instance has seen, if any. */
  identify(ws: WebSocket): { room: string; connectionId: ConnectionId } | undefined {
    return this.identities.get(ws);
  }

  /** Carries out a room's effects. Returns "failed" when the room must be unloaded (its sockets are closed). */
  carryOut(room: string, effects: readonly RoomEffect[]): "ok" | "failed" {
    const sockets = this.of(room);
    for (const effect of effects) {
      switch (effect.kind) {
        case "send":
          trySend(sockets.get(effect.connectionId), effect.frame);
          break;
        case "broadcast":
          for (const [connectionId, ws] of sockets) {
            if (!excludes(effect.except, connectionId)) trySend(ws, effect.frame);
          }
          break;
        case "multicast":
          for (const connectionId of effect.connectionIds)
            trySend(sockets.get(connectionId), effect.frame);
          break;
        case "attach":
          attach(sockets.get(effect.connectionId), effect.attachment);
          break;
        case "close": {
          const ws = sockets.get(effect.connectionId);
          sockets.delete(effect.connectionId);
          if (ws) closeSocket(ws, effect.code, effect.reason);
          break;
        }
        case "verify-token":
          break; // asynchronous: the shard's token refresh (token-refresh.ts) takes it from here
        case "fail-room":
          for (const ws of sockets.values())
            closeSocket(ws, CloseCode.InternalError, effect.reason);
          this.byRoom.delete(room);
          return "failed";
      }
    }
    return "ok";
  }

  private of(room: string): Map<ConnectionId, WebSocket> {
    let sockets = this.byRoom.get(room);
    if (!sockets) {
      sockets = new Map();
      this.byRoom.set(room, sockets);
    }
    return sockets;
  }
}

/** A socket's stored state, checked by its schema; undefined when it has none this code wrote. */
export function readAttachment(ws: WebSocket): ConnectionAttachment | undefined {
  return fromStoredAttachment(ws.deserializeAttachment());
}

export function closeSocket(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed: nothing left to tell the client.
  }
}

/** Stores a socket's state for hibernation; one the platform refuses closes that socket (it would be lost). */
function attach(ws: WebSocket | undefined, attachment: ConnectionAttachment): void {
  if (!ws) return;
  try {
    ws.serializeAttachment(toStoredAttachment(attachment));
  } catch {
    closeSocket(ws, CloseCode.MessageTooBig, "connection state over the 16 KiB attachment limit");
  }
}

function trySend(ws: WebSocket | undefined, frame: Uint8Array): void {
  try {
    ws?.send(frame);
  } catch {
    // The socket is closing; its close handler cleans up.
  }
}
