import * as Y from "yjs";
import { type ConnectionIdentity, hasRight } from "../auth/authenticate";
import type { Right } from "../auth/capabilities";
import { TokenBucket } from "../limits/token-bucket";
import {
  type AwarenessEntry,
  type AwarenessState,
  parseAwarenessState,
} from "../protocol/awareness-codec";
import { CloseCode, type CloseCodeValue, closeReason } from "../protocol/close-codes";
import { decodeIncomingMessage, type IncomingLimits } from "../protocol/incoming-message";
import { OutgoingMessage } from "../protocol/outgoing-message";
import { ProtocolError } from "../protocol/protocol-error";
import {
  type CompactionThresholds,
  type PersistenceStats,
  RoomPersistence,
} from "../storage/room-persistence";
import type { RoomStorage } from "../storage/room-storage";
import { AwarenessTable, type ConnectionId } from "./awareness-table";
import { type ChangeOrigin, isChangeOrigin } from "./change-origin";
import type { ConnectionAttachment } from "./connection-attachment";
import { type MessageTarget, receiveMessage } from "./message-receiver";

export interface RoomLimits extends IncomingLimits, CompactionThresholds {
  maxClientIdsPerConnection: number;
  maxConnectionsPerRoom: number;
  messagesPerSecond: number;
  messageBurst: number;
  maxDocumentBytes: number;
}

export interface ConnectionInfo {
  connectionId: ConnectionId;
  region: string;
  joinedAt: number;
  /** Who the Worker established the connection to be, and its rights in this room. */
  identity: ConnectionIdentity;
}

/** What the shell must do after a call into the room. Frames are encoded once, here. */
export type RoomEffect =
  | { kind: "send"; connectionId: ConnectionId; frame: Uint8Array }
  | { kind: "broadcast"; frame: Uint8Array; except?: ConnectionId }
  | { kind: "attach"; connectionId: ConnectionId; attachment: ConnectionAttachment }
  | { kind: "close"; connectionId: ConnectionId; code: number; reason: string }
  /** The room's memory may no longer match its storage: close every socket and unload it. */
  | { kind: "fail-room"; reason: string };

export interface Member {
  clientId: number;
  state: AwarenessState | null;
  userId: string;
  connectionId: ConnectionId;
  region: string;
  joinedAt: number;
}

export interface RoomSummary {
  connections: number;
  members: number;
  documentBytes: number;
}

/**
 * One room's replica in one shard: its Y.Doc, its awareness table and its local connections.
 * A pure state machine: no platform API, no timers, no clock reads. Each entry point returns
 * the effects the Durable Object shell carries out (frames to send, attachments to write,
 * sockets to close); document writes go through the injected `RoomStorage`.
 */
export class RoomReplica implements MessageTarget {
  private readonly doc = new Y.Doc();
  private readonly awareness: AwarenessTable;
  private readonly connections = new Map<ConnectionId, ConnectionInfo>();
  /**
   * Each connection's message budget, made on its first frame. Kept in memory only: a socket
   * hibernates only after it went quiet, by which time its bucket had refilled anyway.
   */
  private readonly buckets = new Map<ConnectionId, TokenBucket>();
  private readonly persistence: RoomPersistence;
  private effects: RoomEffect[] = [];

  private constructor(
    readonly name: string,
    storage: RoomStorage,
    private readonly limits: RoomLimits,
    nowMs: number,
  ) {
    // Relay clocks start above every earlier load's (awareness-table.ts).
    this.awareness = new AwarenessTable(limits.maxClientIdsPerConnection, nowMs);
    this.persistence = new RoomPersistence(name, storage, limits);
    this.doc.on("update", (update: Uint8Array, origin: unknown) =>
      this.onDocumentUpdate(update, origin),
    );
  }

  /** Loads the room's document from storage; `nowMs` is the current time (Unix ms). */
  static open(name: string, storage: RoomStorage, limits: RoomLimits, nowMs: number): RoomReplica {
    const room = new RoomReplica(name, storage, limits, nowMs);
    room.persistence.loadInto(room.doc);
    return room;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Approximate memory weight of the loaded room, for the shard's budget. */
  get approximateBytes(): number {
    return this.persistence.storedBytes;
  }

  /** A new socket: send sync step 1 and the current awareness, as the reference server does. */
  connect(info: ConnectionInfo): RoomEffect[] {
    const { maxConnectionsPerRoom } = this.limits;
    if (this.connections.size >= maxConnectionsPerRoom) {
      this.emit({
        kind: "close",
        connectionId: info.connectionId,
        code: CloseCode.TryAgainLater,
        reason: `room full: ${maxConnectionsPerRoom} connections (limits.maxConnectionsPerRoom); try again later`,
      });
      return this.flush();
    }
    this.connections.set(info.connectionId, info);
    this.emit({
      kind: "send",
      connectionId: info.connectionId,
      frame: OutgoingMessage.syncStep1(Y.encodeStateVector(this.doc)),
    });
    const present = this.awareness.snapshotForResync(info.connectionId);
    if (present.length > 0) {
      this.emit({
        kind: "send",
        connectionId: info.connectionId,
        frame: OutgoingMessage.awareness(present),
      });
    }
    this.emit({
      kind: "attach",
      connectionId: info.connectionId,
      attachment: this.attachmentOf(info),
    });
    return this.flush();
  }

  /** A socket that survived hibernation: rebuild its presence from its attachment, send nothing. */
  restore(attachment: ConnectionAttachment): void {
    const { connectionId, region, joinedAt, identity } = attachment;
    this.connections.set(connectionId, { connectionId, region, joinedAt, identity });
    this.awareness.restoreConnection(connectionId, attachment.clients);
  }

  /**
   * One binary frame from a connection. A bad frame closes that connection and changes nothing
   * else. A storage failure fails the whole room: its clients reconnect and resync from what
   * is stored, and re-send what it lacks, so nothing is lost. `nowMs` (Unix ms) drives the
   * connection's rate limit.
   */
  receive(connectionId: ConnectionId, frame: Uint8Array, nowMs: number): RoomEffect[] {
    if (!this.connections.has(connectionId)) return [];
    if (!this.withinRate(connectionId, nowMs)) {
      const { messagesPerSecond, messageBurst } = this.limits;
      this.closeConnection(
        connectionId,
        CloseCode.PolicyViolation,
        `rate limit: over ${messagesPerSecond} messages/s (limits.messagesPerSecond), burst ${messageBurst} (limits.messageBurst)`,
      );
      return this.flush();
    }
    try {
      receiveMessage(this, connectionId, decodeIncomingMessage(frame, this.limits));
    } catch (error) {
      if (!(error instanceof ProtocolError)) {
        // A storage failure, or a bug: memory may no longer match storage, so the room restarts.
        console.error(
          `room ${this.name}: failed while handling a frame`,
          error instanceof StorageFailure ? error.cause : error,
        );
        this.effects = [{ kind: "fail-room", reason: "internal error; reconnect to resync" }];
        return this.flush();
      }
      // Effects already emitted stand: they describe changes that were applied and stored.
      if (error instanceof PermissionDenied) {
        this.emit({
          kind: "send",
          connectionId,
          frame: OutgoingMessage.permissionDenied(error.reason),
        });
      }
      this.closeConnection(connectionId, error.code, error.reason);
    }
    return this.flush();
  }

  /** Closes a connection for something the shell caught (a text frame): like a bad frame, only that connection goes. */
  reject(connectionId: ConnectionId, code: CloseCodeValue, reason: string): RoomEffect[] {
    if (!this.connections.has(connectionId)) return [];
    this.closeConnection(connectionId, code, reason);
    return this.flush();
  }

  /** A connection closed (cleanly or not): its awareness entries are removed at once. */
  disconnect(connectionId: ConnectionId): RoomEffect[] {
    if (this.connections.has(connectionId)) this.removeConnection(connectionId);
    return this.flush();
  }

  answerSyncStep1(connectionId: ConnectionId, stateVector: Uint8Array): void {
    const diff = this.diffSince(stateVector);
    this.emit({ kind: "send", connectionId, frame: OutgoingMessage.syncStep2(diff) });
  }

  applyClientUpdate(connectionId: ConnectionId, update: Uint8Array): void {
    const canWrite = this.hasRight(connectionId, "write");
    const decoded = decodeWholeUpdate(update);
    if (!canWrite) {
      // The stock client answers the server's step 1 with a step 2 even when it has nothing to
      // add; only an update that carries content is refused.
      if (decoded.structs.length === 0 && decoded.ds.clients.size === 0) return;
      throw new PermissionDenied("this connection has no write right in the room");
    }
    if (decoded.structs.length > 0) this.assertRoomFor(update);
    const origin: ChangeOrigin = { kind: "connection", connectionId };
    try {
      Y.applyUpdate(this.doc, update, origin);
    } catch (error) {
      if (error instanceof StorageFailure) throw error;
      // Well-formed but impossible to integrate: what Yjs applied before it threw was already
      // stored and broadcast by the update handler, so the document stays consistent.
      throw new ProtocolError(
        CloseCode.InvalidPayload,
        "malformed frame: Yjs could not integrate the update",
      );
    }
  }

  applyClientAwareness(connectionId: ConnectionId, entries: readonly AwarenessEntry[]): void {
    if (!this.hasRight(connectionId, "presence")) return; // dropped: a reader may still relay others' entries
    const result = this.awareness.applyFromConnection(connectionId, entries);
    if (result.relay.length > 0) {
      // Two destination kinds, each encoded once: the others get relay clocks, the sender its own.
      this.emit({
        kind: "broadcast",
        frame: OutgoingMessage.awareness(result.relay),
        except: connectionId,
      });
      this.emit({ kind: "send", connectionId, frame: OutgoingMessage.awareness(result.echo) });
    }
    const info = this.connections.get(connectionId);
    if (result.ownedChanged && info)
      this.emit({ kind: "attach", connectionId, attachment: this.attachmentOf(info) });
  }

  answerQueryAwareness(connectionId: ConnectionId): void {
    this.emit({
      kind: "send",
      connectionId,
      frame: OutgoingMessage.awareness(this.awareness.snapshotForResync(connectionId)),
    });
  }

  /** The whole document, or only what a holder of `stateVector` lacks. Throws a `ProtocolError` for a bad vector. */
  encodeDocument(stateVector?: Uint8Array): Uint8Array {
    return stateVector ? this.diffSince(stateVector) : Y.encodeStateAsUpdate(this.doc);
  }

  members(): Member[] {
    return this.awareness.presentWithOwners().flatMap((entry) => {
      const info = this.connections.get(entry.owner);
      if (!info) return [];
      return [
        {
          clientId: entry.clientId,
          state: parseAwarenessState(entry.json),
          userId: info.identity.userId,
          connectionId: info.connectionId,
          region: info.region,
          joinedAt: info.joinedAt,
        },
      ];
    });
  }

  summary(): RoomSummary {
    return {
      connections: this.connections.size,
      members: this.awareness.presentWithOwners().length,
      documentBytes: Y.encodeStateAsUpdate(this.doc).byteLength,
    };
  }

  /** How the document is stored (snapshot, log, compactions): for operators, behind the admin token. */
  storageStats(): PersistenceStats {
    return this.persistence.snapshotStats();
  }

  /** Releases the document when the shard unloads the room. */
  destroy(): void {
    this.doc.destroy();
  }

  private onDocumentUpdate(update: Uint8Array, origin: unknown): void {
    if (isChangeOrigin(origin) && origin.kind === "storage") return;
    try {
      this.persistence.append(update, this.doc);
    } catch (cause) {
      throw new StorageFailure(cause);
    }
    this.emit({ kind: "broadcast", frame: OutgoingMessage.syncUpdate(update) });
  }

  /**
   * Closes every connection whose token expired by `nowMs`; the client can reconnect with a
   * fresh token. Returns the effects and the next expiry still ahead (for the shard's alarm).
   */
  expire(nowMs: number): { effects: RoomEffect[]; nextExpiry: number | null } {
    let nextExpiry: number | null = null;
    for (const [connectionId, info] of this.connections) {
      const expiresAt = info.identity.expiresAt;
      if (expiresAt === null) continue;
      if (expiresAt <= nowMs) {
        this.closeConnection(
          connectionId,
          CloseCode.PolicyViolation,
          "token expired; reconnect with a fresh token",
        );
      } else if (nextExpiry === null || expiresAt < nextExpiry) {
        nextExpiry = expiresAt;
      }
    }
    return { effects: this.flush(), nextExpiry };
  }

  /**
   * Refuses an update that adds content once the stored document would pass
   * `maxDocumentBytes`. Deletions still land, so a full room can be trimmed; compaction runs
   * first, because the log may hold far more bytes than the document it folds into.
   */
  private assertRoomFor(update: Uint8Array): void {
    const limit = this.limits.maxDocumentBytes;
    if (this.persistence.storedBytes + update.byteLength <= limit) return;
    if (this.persistence.snapshotStats().logUpdates > 0) {
      try {
        this.persistence.compact(this.doc);
      } catch (cause) {
        throw new StorageFailure(cause);
      }
    }
    if (this.persistence.storedBytes + update.byteLength <= limit) return;
    throw new ProtocolError(
      CloseCode.MessageTooBig,
      `document full: ${this.persistence.storedBytes} bytes stored, limit ${limit} (limits.maxDocumentBytes); only deletions accepted`,
    );
  }

  private withinRate(connectionId: ConnectionId, nowMs: number): boolean {
    let bucket = this.buckets.get(connectionId);
    if (!bucket) {
      bucket = new TokenBucket(
        { perSecond: this.limits.messagesPerSecond, burst: this.limits.messageBurst },
        nowMs,
      );
      this.buckets.set(connectionId, bucket);
    }
    return bucket.take(nowMs);
  }

  private hasRight(connectionId: ConnectionId, right: Right): boolean {
    const info = this.connections.get(connectionId);
    return info !== undefined && hasRight(info.identity, right);
  }

  /** Tells the shell to close the socket, and drops the connection and its awareness at once. */
  private closeConnection(connectionId: ConnectionId, code: number, reason: string): void {
    this.emit({ kind: "close", connectionId, code, reason: closeReason(reason) });
    this.removeConnection(connectionId);
  }

  private removeConnection(connectionId: ConnectionId): void {
    this.connections.delete(connectionId);
    this.buckets.delete(connectionId);
    const removed = this.awareness.removeConnection(connectionId);
    if (removed.length > 0)
      this.emit({ kind: "broadcast", frame: OutgoingMessage.awareness(removed) });
  }

  private diffSince(stateVector: Uint8Array): Uint8Array {
    try {
      return Y.encodeStateAsUpdate(this.doc, stateVector);
    } catch {
      throw new ProtocolError(
        CloseCode.InvalidPayload,
        "malformed frame: invalid Yjs state vector",
      );
    }
  }

  private attachmentOf(info: ConnectionInfo): ConnectionAttachment {
    return { v: 1, room: this.name, ...info, clients: this.awareness.ownedBy(info.connectionId) };
  }

  private emit(effect: RoomEffect): void {
    this.effects.push(effect);
  }

  private flush(): RoomEffect[] {
    const effects = this.effects;
    this.effects = [];
    return effects;
  }
}

/**
 * Reads the whole update before it touches the document: `Y.applyUpdate` integrates structs
 * before it reads the delete set, so a frame that breaks late would leave a partial change.
 */
function decodeWholeUpdate(update: Uint8Array): ReturnType<typeof Y.decodeUpdate> {
  try {
    return Y.decodeUpdate(update);
  } catch {
    throw new ProtocolError(CloseCode.InvalidPayload, "malformed frame: invalid Yjs update");
  }
}

/** A frame the connection's rights do not allow: answered with y-websocket's auth message, then a close. */
export class PermissionDenied extends ProtocolError {
  constructor(reason: string) {
    super(CloseCode.PolicyViolation, `permission denied: ${reason}`);
  }
}

/** A write to storage failed: the room's memory may now hold what its storage does not. */
class StorageFailure extends Error {
  override readonly name = "StorageFailure";

  constructor(override readonly cause: unknown) {
    super("storage write failed");
  }
}
