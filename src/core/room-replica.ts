import * as Y from "yjs";
import { type ConnectionIdentity, hasRight } from "../auth/authenticate";
import type { Right } from "../auth/capabilities";
import { TokenBucket } from "../limits/token-bucket";
import {
  type LiveConnection,
  type PresenceOptions,
  PresenceRoster,
} from "../presence/presence-roster";
import type { Member, PresenceEvent, PresenceSnapshot } from "../presence/presence-schema";
import type { PresenceStore } from "../presence/presence-store";
import { pageSnapshot } from "../presence/snapshot-pages";
import {
  type AwarenessEntry,
  type AwarenessState,
  parseAwarenessState,
} from "../protocol/awareness-codec";
import { CloseCode, type CloseCodeValue, closeReason } from "../protocol/close-codes";
import type { ControlMessage } from "../protocol/extension-messages";
import { decodeIncomingMessage, type IncomingLimits } from "../protocol/incoming-message";
import { OutgoingMessage } from "../protocol/outgoing-message";
import { ProtocolError } from "../protocol/protocol-error";
import { PeerExchange } from "../replication/peer-exchange";
import type { MemberRecord, OutrankedRecord } from "../replication/replica-messages";
import { murmur3x86_32 } from "../routing/hash";
import {
  type CompactionThresholds,
  type PersistenceStats,
  RoomPersistence,
} from "../storage/room-persistence";
import type { RoomStorage } from "../storage/room-storage";
import { AwarenessTable, type ConnectionId, NULL_STATE_JSON } from "./awareness-table";
import { type ChangeOrigin, isChangeOrigin } from "./change-origin";
import type { ConnectionAttachment } from "./connection-attachment";
import { FanoutBatch, type FanoutOptions } from "./fanout-batch";
import { type MessageTarget, receiveMessage } from "./message-receiver";
import { StorageFailure } from "./storage-failure";
import {
  crossedOrigins,
  misplacedItem,
  missingDependency,
  splitCharacter,
} from "./update-integrity";

export interface RoomLimits extends IncomingLimits, CompactionThresholds {
  /** Largest page of a presence snapshot, in bytes of JSON. */
  snapshotPageBytes: number;
  maxClientIdsPerConnection: number;
  maxConnectionsPerRoom: number;
  messagesPerSecond: number;
  messageBurst: number;
  maxDocumentBytes: number;
}

export interface ConnectionInfo {
  connectionId: ConnectionId;
  region: string;
  /** When the connection opened (Unix ms): also the time of the `connect` call. */
  joinedAt: number;
  /** Who the Worker established the connection to be, and its rights in this room. */
  identity: ConnectionIdentity;
  /** The connection opted in to presence events on the extension channel. */
  presenceEvents?: boolean;
}

/** What a room needs from its shard: storage for the document and for presence, and its settings. */
export interface RoomDependencies {
  storage: RoomStorage;
  presenceStore: PresenceStore;
  limits: RoomLimits;
  /** Presence settings resolved for this room (its grace). */
  presence: PresenceOptions;
  /** Set when the room has replicas in other regions: this replica's region and batch window. */
  replication?: ReplicationOptions;
  /** How the room coalesces its fan-out; without it every change goes out (and is written) at once. */
  fanout?: FanoutOptions;
}

export interface ReplicationOptions {
  region: string;
  /** How long local changes gather before they go to peers as one batch (ms; 0: at once). */
  batchMs: number;
}

/** What this replica has heard from each region: how many members, and when (Unix ms). */
export interface PresenceSource {
  region: string;
  members: number;
  /** When this replica last heard from that region (its own region: now); null if never. */
  heardAt: number | null;
}

/** This replica's side of an anti-entropy exchange. */
export interface SyncState {
  stateVector: Uint8Array;
  /** Every member this region owns, with its version. */
  members: MemberRecord[];
  /** Every record this replica numbered is at or below this version. */
  asOf: number;
}

/** What the shell must do after a call into the room. Frames are encoded once, here. */
export type RoomEffect =
  | { kind: "send"; connectionId: ConnectionId; frame: Uint8Array }
  /** To every open connection but `except` (one, or the senders of a coalesced window): see `excludes`. */
  | { kind: "broadcast"; frame: Uint8Array; except?: ConnectionId | ReadonlySet<ConnectionId> }
  /** The same frame to a few connections (the presence subscribers). */
  | { kind: "multicast"; connectionIds: ConnectionId[]; frame: Uint8Array }
  | { kind: "attach"; connectionId: ConnectionId; attachment: ConnectionAttachment }
  | { kind: "close"; connectionId: ConnectionId; code: number; reason: string }
  /** The room's memory may no longer match its storage: close every socket and unload it. */
  | { kind: "fail-room"; reason: string }
  /**
   * A connection sent a fresh token (`auth.refresh`). Checking it is asynchronous, so the shell
   * does it and answers with `refreshIdentity` (or `reject`); nothing is sent meanwhile.
   */
  | { kind: "verify-token"; connectionId: ConnectionId; token: string };

/** Whether a broadcast leaves out this connection. */
export function excludes(
  except: ConnectionId | ReadonlySet<ConnectionId> | undefined,
  connectionId: ConnectionId,
): boolean {
  if (except === undefined) return false;
  return typeof except === "string" ? except === connectionId : except.has(connectionId);
}

/** An awareness entry with the connection that owns it: the awareness layer, without grace. */
export interface AwarenessOwner {
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
  /** Connections sent a sync step 1 because an update of theirs had a gap, until one applies. */
  private readonly resyncAsked = new Set<ConnectionId>();
  /** Per new connection, the entries its snapshot held back until it announces itself (`connect`). */
  private readonly heldBack = new Map<ConnectionId, Set<number>>();
  private readonly persistence: RoomPersistence;
  private readonly limits: RoomLimits;
  /** Set by `open` once the live connections are known. */
  private presence!: PresenceRoster;
  private effects: RoomEffect[] = [];
  /** Presence events of the current call, sent to subscribers in one frame when it ends. */
  private presenceEvents: PresenceEvent[] = [];
  /** The time of the current call (Unix ms): every entry point is given it. */
  private nowMs: number;
  /** The earliest time the room asked to be woken at since the shell last looked. */
  private wakeAt: number | null = null;
  /** Replication state, when the room replicates (deps.replication). */
  private readonly peers: PeerExchange | null;
  /** Changes held back to leave together (fanout-batch.ts); drained at once without `deps.fanout`. */
  private readonly batch: FanoutBatch;
  /** When the batch last drained (Unix ms), and when its window ends if it waits. */
  private lastFanoutAt = Number.NEGATIVE_INFINITY;
  private fanoutAt: number | null = null;

  private constructor(
    readonly name: string,
    deps: RoomDependencies,
    nowMs: number,
  ) {
    this.limits = deps.limits;
    this.nowMs = nowMs;
    // Relay clocks start above every earlier load's (awareness-table.ts).
    this.awareness = new AwarenessTable(deps.limits.maxClientIdsPerConnection, nowMs);
    this.persistence = new RoomPersistence(name, deps.storage, deps.limits);
    this.batch = new FanoutBatch(
      deps.fanout ?? { maxCoalesceMs: 0, sendsPerSecond: 1, writesPerSecond: 1 },
    );
    this.peers = deps.replication
      ? new PeerExchange(deps.replication.region, deps.replication.batchMs, nowMs, {
          doc: this.doc,
          awareness: this.awareness,
          presence: () => this.presence,
          now: () => this.nowMs,
          emit: (effect) => this.emit(effect),
          record: (events) => this.presenceEvents.push(...events),
        })
      : null;
    this.doc.on("update", (update: Uint8Array, origin: unknown) =>
      this.onDocumentUpdate(update, origin),
    );
    this.setNow(nowMs);
  }

  /** The time of the current call; a replicating room's relay clocks follow it (awareness-table.ts, `advance`). */
  private setNow(nowMs: number): void {
    this.nowMs = nowMs;
    if (this.peers) this.awareness.advance(nowMs);
  }

  /**
   * Loads the room: its document from storage, the connections whose sockets survived
   * hibernation (from their attachments), then its presence, which must know which members'
   * connections are still open. The effects carry presence events the load caused (members
   * whose connection vanished with a restart start their grace).
   */
  static open(
    name: string,
    deps: RoomDependencies,
    nowMs: number,
    restored: readonly ConnectionAttachment[] = [],
    /** Members just handed over with the room from another shard (their clients are on the way). */
    arriving: ReadonlySet<number> = new Set(),
  ): { room: RoomReplica; effects: RoomEffect[] } {
    const room = new RoomReplica(name, deps, nowMs);
    room.persistence.loadInto(room.doc);
    const live: LiveConnection[] = [];
    for (const attachment of restored) {
      const { connectionId, region, joinedAt, identity, presenceEvents } = attachment;
      const info = { connectionId, region, joinedAt, identity, presenceEvents };
      room.connections.set(connectionId, info);
      room.awareness.restoreConnection(connectionId, attachment.clients);
      live.push({
        connectionId,
        region,
        identity,
        clients: attachment.clients.filter(({ json }) => json !== NULL_STATE_JSON),
      });
    }
    const loaded = PresenceRoster.load(
      name,
      deps.presenceStore,
      { ...deps.presence, ...(deps.replication ? { region: deps.replication.region } : {}) },
      nowMs,
      live,
      arriving,
    );
    room.presence = loaded.roster;
    // A loaded replica announces its members anew: peers may have dropped them meanwhile.
    for (const clientId of loaded.roster.localClientIds()) room.peers?.markChanged(clientId);
    room.presenceEvents.push(...loaded.events);
    room.wakeFor(loaded.roster.nextDeadline());
    return { room, effects: room.flush() };
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * When the room has work due (Unix ms) that it asked for since the last look: a token
   * expiry, the end of a grace, presence updates to write. The shell's alarm must fire no
   * later. Cheap, so the shell asks after every call.
   */
  takeWakeAt(): number | null {
    const at = this.wakeAt;
    this.wakeAt = null;
    return at;
  }

  /** Approximate memory weight of the loaded room, for the shard's budget. */
  get approximateBytes(): number {
    return this.persistence.storedBytes;
  }

  /**
   * A new socket: send sync step 1 and the current awareness, as the reference server does,
   * and the presence snapshot if it subscribed. `info.joinedAt` is the time of the call.
   */
  connect(info: ConnectionInfo): RoomEffect[] {
    this.setNow(info.joinedAt);
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
    // Another region's entry of this same user may be this client's own (it is moving region):
    // at a relay clock it would adopt that older state over its own. Which one is its own is
    // known once it announces itself, so those entries wait until then (releaseHeldBack): the
    // user's other tabs and devices are entries like any other (found by the simulator).
    const present: AwarenessEntry[] = [];
    const heldBack = new Set<number>();
    for (const e of this.awareness.snapshotForResync(info.connectionId)) {
      const sameUser = this.presence.member(e.clientId)?.userId === info.identity.userId;
      if (!this.awareness.heldLocally(e.clientId) && sameUser) heldBack.add(e.clientId);
      else present.push(e);
    }
    if (heldBack.size > 0) this.heldBack.set(info.connectionId, heldBack);
    if (present.length > 0) {
      this.emit({
        kind: "send",
        connectionId: info.connectionId,
        frame: OutgoingMessage.awareness(present),
      });
    }
    if (info.presenceEvents) this.sendPresenceSnapshot(info.connectionId);
    this.emit({
      kind: "attach",
      connectionId: info.connectionId,
      attachment: this.attachmentOf(info),
    });
    if (info.identity.expiresAt !== null) this.wakeFor(info.identity.expiresAt);
    return this.flush();
  }

  /**
   * One binary frame from a connection. A bad frame closes that connection and changes nothing
   * else. A storage failure fails the whole room: its clients reconnect and resync from what
   * is stored, and re-send what it lacks, so nothing is lost. `nowMs` (Unix ms) drives the
   * connection's rate limit.
   */
  receive(connectionId: ConnectionId, frame: Uint8Array, nowMs: number): RoomEffect[] {
    if (!this.connections.has(connectionId)) return [];
    this.setNow(nowMs);
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
  reject(
    connectionId: ConnectionId,
    code: CloseCodeValue,
    reason: string,
    nowMs: number,
  ): RoomEffect[] {
    if (!this.connections.has(connectionId)) return [];
    this.setNow(nowMs);
    this.closeConnection(connectionId, code, reason);
    return this.flush();
  }

  /**
   * A connection closed. Its awareness entries are removed at once either way; its presence
   * members leave at once after a clean close, and get the disconnect grace otherwise.
   */
  disconnect(connectionId: ConnectionId, clean: boolean, nowMs: number): RoomEffect[] {
    this.setNow(nowMs);
    if (!this.connections.has(connectionId)) return this.flush();
    this.removeConnection(connectionId, clean);
    // At rest a room is one snapshot: the last one out folds the log in (a room's stored
    // bytes then equal its document's encoding, whatever the log's thresholds).
    if (this.connections.size === 0) this.guarded(() => this.compactAtRest());
    return this.flush();
  }

  private compactAtRest(): void {
    this.drainFanout();
    if (this.persistence.snapshotStats().logUpdates === 0) return;
    try {
      this.persistence.compact(this.doc);
    } catch (cause) {
      throw new StorageFailure(cause);
    }
  }

  answerSyncStep1(connectionId: ConnectionId, stateVector: Uint8Array): void {
    const diff = this.diffSince(stateVector);
    this.emit({ kind: "send", connectionId, frame: OutgoingMessage.syncStep2(diff) });
  }

  applyClientUpdate(connectionId: ConnectionId, update: Uint8Array): void {
    const canWrite = this.hasRight(connectionId, "write");
    // Only what the room lacks is applied: Yjs re-integrating a struct it already holds can
    // split a stored item (even inside a surrogate pair) before it notices the repeat.
    // A malformed frame is refused as such, before anything else. Usually every struct is new
    // (a live client sends only what it just made), and the update is used as it came.
    const whole = decodeWholeUpdate(update);
    const allNew = whole.structs.every(
      (struct) => struct.id.clock >= Y.getState(this.doc.store, struct.id.client),
    );
    const fresh = allNew ? update : newPartOf(update, this.doc);
    const decoded = allNew ? whole : decodeWholeUpdate(fresh);
    const empty = decoded.structs.length === 0 && decoded.ds.clients.size === 0;
    if (!canWrite) {
      // The stock client answers the server's step 1 with a step 2 even when it has nothing to
      // add; only an update that carries content is refused.
      if (empty) return;
      throw new PermissionDenied("this connection has no write right in the room");
    }
    if (empty) return;
    if (missingDependency(this.doc, decoded) !== null) {
      // It builds on content this room lacks: frames of this client's that an old shard
      // dropped after a move, or an edit sent before the reconnect's sync finished. It is not
      // applied (Yjs would hold it pending, and a pending struct poisons later syncs); instead
      // the client is sent the room's state vector once, and its step 2 answer brings the
      // missing content and this update together.
      if (!this.resyncAsked.has(connectionId)) {
        this.resyncAsked.add(connectionId);
        const vector = Y.encodeStateVector(this.doc);
        this.emit({ kind: "send", connectionId, frame: OutgoingMessage.syncStep1(vector) });
      }
      return;
    }
    this.resyncAsked.delete(connectionId);
    const misplaced =
      misplacedItem(this.doc, decoded) ??
      crossedOrigins(this.doc, decoded) ??
      splitCharacter(this.doc, decoded);
    if (misplaced !== null)
      throw new ProtocolError(CloseCode.InvalidPayload, `malformed frame: ${misplaced}`);
    if (decoded.structs.length > 0) this.assertRoomFor(fresh);
    const origin: ChangeOrigin = { kind: "connection", connectionId };
    try {
      Y.applyUpdate(this.doc, fresh, origin);
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
    if (!this.hasRight(connectionId, "presence")) {
      this.releaseHeldBack(connectionId); // it claims nothing: every entry held back is another's
      return; // dropped: a reader may still relay others' entries
    }
    const userId = this.connections.get(connectionId)?.identity.userId;
    // Another region's member may be taken over by the same user: its client moved region.
    const result = this.awareness.applyFromConnection(
      connectionId,
      entries,
      (clientId) => this.presence.member(clientId)?.userId === userId,
    );
    for (const entry of result.relay) this.peers?.markChanged(entry.clientId);
    // Two destination kinds, each encoded once per window: the others get relay clocks, the
    // sender its own (fanout-batch.ts).
    if (result.relay.length > 0) this.batch.addAwareness(connectionId, result.relay, result.echo);
    const info = this.connections.get(connectionId);
    if (result.ownedChanged && info)
      this.emit({ kind: "attach", connectionId, attachment: this.attachmentOf(info) });
    if (info) {
      // The presence layer follows the owned changes (the relayed entries are exactly those).
      for (const entry of result.relay) {
        this.presenceEvents.push(
          ...(entry.json === NULL_STATE_JSON
            ? this.presence.withdraw(entry.clientId, this.nowMs)
            : this.presence.announce(info, entry.clientId, entry.json, this.nowMs)),
        );
      }
      this.wakeFor(this.presence.nextFlush());
    }
    this.releaseHeldBack(connectionId);
  }

  /**
   * After a connection's first awareness frame: the entries held back at connect (other
   * regions' entries of its user) that it did not claim as its own are another tab's or
   * device's, and are sent now, as the snapshot would have.
   */
  private releaseHeldBack(connectionId: ConnectionId): void {
    const ids = this.heldBack.get(connectionId);
    if (!ids) return;
    this.heldBack.delete(connectionId);
    const entries = this.awareness
      .snapshotForResync(connectionId)
      .filter((e) => ids.has(e.clientId) && !this.awareness.heldLocally(e.clientId));
    if (entries.length > 0)
      this.emit({ kind: "send", connectionId, frame: OutgoingMessage.awareness(entries) });
  }

  applyControl(connectionId: ConnectionId, message: ControlMessage): void {
    const info = this.connections.get(connectionId);
    if (!info) return;
    if (message.type === "auth.refresh") {
      this.emit({ kind: "verify-token", connectionId, token: message.token });
      return;
    }
    if (message.type === "presence.subscribe" && !info.presenceEvents) {
      info.presenceEvents = true;
      this.emit({ kind: "attach", connectionId, attachment: this.attachmentOf(info) });
    }
    this.sendPresenceSnapshot(connectionId);
  }

  /**
   * A fresh token for an open connection (`auth.refresh`), verified by the shell for this room.
   * It must name the connection's own user. Its expiry and rights replace the connection's;
   * the name and user info stay as at connect, so presence sees no change (they change with a
   * reconnect). The attachment follows, so the new identity survives hibernation, and the
   * alarm is asked for the new expiry (an alarm set for the old one finds nothing due and sets
   * the next). Narrowed rights apply from the next frame on (`hasRight` reads the identity); a
   * dropped `presence` also withdraws the connection's awareness entries at once, since it
   * could no longer renew or remove them itself. Answers `auth.refreshed` to that socket only.
   */
  refreshIdentity(
    connectionId: ConnectionId,
    identity: ConnectionIdentity,
    nowMs: number,
  ): RoomEffect[] {
    const info = this.connections.get(connectionId);
    if (!info) return []; // closed while its token was being checked
    this.setNow(nowMs);
    if (identity.userId !== info.identity.userId) {
      this.closeConnection(
        connectionId,
        CloseCode.PolicyViolation,
        "token refresh names another user",
      );
      return this.flush();
    }
    const { expiresAt, rights } = identity;
    if (expiresAt !== null && expiresAt <= nowMs) {
      // Within the verifier's clock tolerance, but already past: the alarm would close it at once.
      this.closeConnection(
        connectionId,
        CloseCode.PolicyViolation,
        "token refresh refused: token has expired",
      );
      return this.flush();
    }
    const hadPresence = hasRight(info.identity, "presence");
    info.identity = { ...info.identity, rights: [...rights], expiresAt };
    if (hadPresence && !hasRight(info.identity, "presence")) this.withdrawAwareness(connectionId);
    this.emit({ kind: "attach", connectionId, attachment: this.attachmentOf(info) });
    this.emit({
      kind: "send",
      connectionId,
      frame: OutgoingMessage.extension({ type: "auth.refreshed", expiresAt }),
    });
    if (expiresAt !== null) this.wakeFor(expiresAt);
    return this.flush();
  }

  /** Removes a still-open connection's awareness entries, as its close would (its members leave with `left`). */
  private withdrawAwareness(connectionId: ConnectionId): void {
    const removed = this.awareness.removeConnection(connectionId);
    if (removed.length === 0) return;
    // Not to the connection itself: a stock client answers a null for its own entry by re-sending it.
    this.emit({
      kind: "broadcast",
      frame: OutgoingMessage.awareness(removed),
      except: connectionId,
    });
    for (const entry of removed)
      this.presenceEvents.push(...this.presence.withdraw(entry.clientId, this.nowMs));
    this.wakeFor(this.presence.nextDeadline());
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

  /** Presence members: every announced client, joined with its connection, including those in their grace. */
  members(): Member[] {
    return this.presence.memberList();
  }

  /** The room's presence version: the sequence number of its latest presence event. */
  get presenceVersion(): number {
    return this.presence.version;
  }

  /** The presence snapshot (members, users, sequence number). */
  presenceSnapshot(): PresenceSnapshot {
    return this.presence.snapshot();
  }

  /** The awareness layer's entries and their owners (no grace: a closed connection's are gone). */
  awarenessOwners(): AwarenessOwner[] {
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
      members: this.presence.memberCount,
      documentBytes: Y.encodeStateAsUpdate(this.doc).byteLength,
    };
  }

  /**
   * The room's state from the shard of this region that held it before a resize, arriving
   * while this shard already serves it (the first pull timed out): applied, written, fanned out.
   */
  applyHandOff(fromShard: number, update: Uint8Array, nowMs: number): RoomEffect[] {
    this.setNow(nowMs);
    this.guarded(() => Y.applyUpdate(this.doc, update, { kind: "handoff", fromShard }));
    return this.flush();
  }

  /** How the document is stored (snapshot, log, compactions): for operators, behind the admin token. */
  storageStats(): PersistenceStats {
    return this.persistence.snapshotStats();
  }

  /** Writes what presence kept in memory and releases the document, when the shard unloads the room. */
  unload(): void {
    // Unloaded rooms have no open connection; what a peer sent in the last window is written.
    this.guarded(() => this.drainFanout());
    this.presence.flush();
    this.doc.destroy();
  }

  /** Releases the document without writing anything (the room failed, or in tests). */
  destroy(): void {
    this.doc.destroy();
  }

  // Replication between regions (DESIGN.md, "Replication between regions"): the work is
  // `PeerExchange`'s (src/replication/peer-exchange.ts); here each call gets the room's time, a
  // guard that fails the room on a storage failure, and the flush that turns it into effects.

  /** Peers' updates waiting for content they build on (delivery between regions is unordered). */
  get waitingPeerUpdates(): number {
    return this.peers?.waitingUpdates ?? 0;
  }

  /** When the waiting batch for peers is due (Unix ms), or null when nothing waits. */
  get batchDueAt(): number | null {
    return this.peers?.batchDueAt ?? null;
  }

  /** Local changes for the peers, once the batch window has passed (`force`: at once). */
  takeBatch(nowMs: number, force = false): { update?: Uint8Array; members: MemberRecord[] } | null {
    return this.peers?.takeBatch(nowMs, force) ?? null;
  }

  /**
   * A peer region's batch: its document update is applied (idempotent, any order) and its
   * members' records where they outrank what is held. `acceptMembers` is false while the
   * table holds `from` dead: its document changes still land, its members would be ghosts.
   */
  applyPeerBatch(
    from: string,
    batch: { update?: Uint8Array; members: readonly MemberRecord[] },
    nowMs: number,
    acceptMembers = true,
  ): RoomEffect[] {
    const peers = this.peers;
    if (!peers) return [];
    this.setNow(nowMs);
    this.guarded(() => peers.applyBatch(from, batch, acceptMembers));
    return this.flush();
  }

  /**
   * A peer's side of anti-entropy (see `PeerExchange.applySync`). Returns the effects, what the
   * peer lacks from its state vector, and its records outranked here.
   */
  applyPeerSync(
    from: string,
    sync: SyncState & { update?: Uint8Array; outranked?: readonly OutrankedRecord[] },
    nowMs: number,
    acceptMembers = true,
  ): { effects: RoomEffect[]; diff: Uint8Array | null; outranked: OutrankedRecord[] } {
    const peers = this.peers;
    if (!peers) return { effects: [], diff: null, outranked: [] };
    this.setNow(nowMs);
    let outranked: OutrankedRecord[] = [];
    this.guarded(() => {
      outranked = peers.applySync(from, sync, acceptMembers);
    });
    let diff: Uint8Array | null = null;
    try {
      diff = this.diffSince(sync.stateVector);
    } catch {
      diff = null; // a vector Yjs cannot read: nothing to send for it
    }
    return { effects: this.flush(), diff, outranked };
  }

  /** This replica's side of anti-entropy: its state vector and every member its region owns. */
  syncState(): SyncState {
    const stateVector = Y.encodeStateVector(this.doc);
    if (!this.peers) return { stateVector, members: [], asOf: 0 };
    return { stateVector, ...this.peers.ownRecords() };
  }

  /**
   * A fingerprint of the document's delete set, which a state vector does not show: two
   * replicas with equal vectors and equal fingerprints hold the same document, and anti-entropy
   * sends nothing. (Yjs encodes a delete set canonically: clients sorted, ranges merged.)
   */
  deleteSetDigest(): number {
    const ds = Y.createDeleteSetFromStructStore(this.doc.store);
    return murmur3x86_32(Y.encodeSnapshot(Y.createSnapshot(ds, new Map())));
  }

  /** True when a holder of `stateVector` has every struct this replica has. */
  coveredBy(stateVector: Uint8Array): boolean {
    try {
      return Y.decodeUpdate(this.diffSince(stateVector)).structs.length === 0;
    } catch {
      return false;
    }
  }

  /** `region` was declared dead: its members leave here with `region_lost`, its cursors vanish. */
  regionLost(region: string, nowMs: number): RoomEffect[] {
    const peers = this.peers;
    if (!peers || region === peers.region) return [];
    this.setNow(nowMs);
    peers.regionLost(region);
    return this.flush();
  }

  /** Which regions this replica's presence came from, and when it last heard from each. */
  presenceSources(nowMs: number): PresenceSource[] {
    return (
      this.peers?.presenceSources(nowMs) ??
      [...new Set(this.presence.memberList().map((m) => m.region))].map((region) => ({
        region,
        members: this.presence.memberList().filter((m) => m.region === region).length,
        heardAt: nowMs,
      }))
    );
  }

  /** The other regions whose members this replica holds (replication asks them, see RoomLink). */
  memberRegions(): string[] {
    return this.peers?.memberRegions() ?? [];
  }

  /** The members this region owns: what `?consistency=all` asks each region for. */
  localMembers(): Member[] {
    const ids = new Set(this.presence.localClientIds());
    return this.presence.memberList().filter((member) => ids.has(member.clientId));
  }

  /** Runs peer work; a storage failure fails the room as for a client frame. */
  private guarded(work: () => void): void {
    try {
      work();
    } catch (error) {
      console.error(
        `room ${this.name}: failed while applying a peer's change`,
        error instanceof StorageFailure ? error.cause : error,
      );
      this.effects = [{ kind: "fail-room", reason: "internal error; reconnect to resync" }];
    }
  }

  private onDocumentUpdate(update: Uint8Array, origin: unknown): void {
    if (isChangeOrigin(origin) && origin.kind === "storage") return;
    const fromConnection = isChangeOrigin(origin) && origin.kind === "connection";
    // Written and fanned out when the batch drains, together, so no socket sees an update
    // before its write: the platform holds outgoing frames until the writes before them land.
    this.batch.addUpdate(update, fromConnection ? origin.connectionId : null);
    // One hop: a peer's update reached every peer from its own region already. A hand-off's
    // did too, most likely, but its old shard may have been stopped before its batch left.
    const ownRegion = fromConnection || (isChangeOrigin(origin) && origin.kind === "handoff");
    if (this.peers && ownRegion) this.peers.addLocalUpdate(update, this.nowMs);
  }

  /**
   * When the held-back fan-out is due (Unix ms), asked for since the shell last looked; the
   * shell calls `flushFanout` then (a timer: the window is milliseconds, below the alarm's grain).
   */
  takeFanoutAt(): number | null {
    const at = this.fanoutAt;
    this.fanoutAt = null;
    return at;
  }

  /** The end of a coalescing window: writes and sends what it gathered. */
  flushFanout(nowMs: number): RoomEffect[] {
    this.setNow(nowMs);
    this.guarded(() => this.drainFanout());
    return this.flush();
  }

  /**
   * Leading edge: a change after a quiet spell leaves at once; changes within the window after
   * a drain wait for its end and leave together. A window of 0 drains at the end of every call.
   */
  private settleFanout(): void {
    if (this.batch.empty) return;
    const due = this.lastFanoutAt + this.batch.windowMs(this.connections.size);
    if (this.nowMs >= due) this.guarded(() => this.drainFanout());
    else this.fanoutAt = due;
  }

  /** One write of the window's merged update, then every frame of the window, each encoded once. */
  private drainFanout(): void {
    if (this.batch.empty) return;
    this.lastFanoutAt = this.nowMs;
    const drained = this.batch.drain();
    if (drained.update) {
      try {
        this.persistence.append(drained.update, this.doc);
      } catch (cause) {
        throw new StorageFailure(cause);
      }
      // The sender of every update in it holds them already.
      this.effects.push({
        kind: "broadcast",
        frame: OutgoingMessage.syncUpdate(drained.update),
        except: drained.updateExcept,
      });
    }
    if (drained.awarenessFrame) {
      const senders = drained.awarenessExcept;
      const only = senders.size === 1 ? [...senders][0] : undefined;
      this.effects.push({
        kind: "broadcast",
        frame: drained.awarenessFrame,
        except: only ?? senders,
      });
      for (const { connectionId, frame } of drained.awarenessPerSender)
        this.effects.push({ kind: "send", connectionId, frame });
    }
  }

  /**
   * The alarm: closes every connection whose token expired by `nowMs` (the client can
   * reconnect with a fresh token), ends disconnect graces that ran out and writes waiting
   * presence updates. Returns the effects and when the room next has work (for the alarm).
   */
  expire(nowMs: number): { effects: RoomEffect[]; nextDeadline: number | null } {
    this.setNow(nowMs);
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
    this.presenceEvents.push(...this.presence.expire(nowMs));
    const presenceDeadline = this.presence.nextDeadline();
    this.wakeAt = null; // the alarm is being set from the full answer below
    return { effects: this.flush(), nextDeadline: earliest(nextExpiry, presenceDeadline) };
  }

  /**
   * Refuses an update that adds content once the stored document would pass
   * `maxDocumentBytes`. Deletions still land, so a full room can be trimmed; compaction runs
   * first, because the log may hold far more bytes than the document it folds into.
   */
  private assertRoomFor(update: Uint8Array): void {
    const limit = this.limits.maxDocumentBytes;
    const waiting = this.batch.pendingUpdateBytes; // applied, not yet written
    if (this.persistence.storedBytes + waiting + update.byteLength <= limit) return;
    if (this.persistence.snapshotStats().logUpdates > 0 || waiting > 0) {
      try {
        this.persistence.compact(this.doc);
      } catch (cause) {
        throw new StorageFailure(cause);
      }
    }
    // The snapshot just written holds the waiting updates too.
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

  /**
   * Tells the shell to close the socket, and drops the connection and its awareness at once.
   * For presence this is not a clean close: the client will reconnect, so its members get the grace.
   */
  private closeConnection(connectionId: ConnectionId, code: number, reason: string): void {
    this.emit({ kind: "close", connectionId, code, reason: closeReason(reason) });
    this.removeConnection(connectionId, false);
  }

  private removeConnection(connectionId: ConnectionId, clean: boolean): void {
    this.connections.delete(connectionId);
    this.buckets.delete(connectionId);
    this.resyncAsked.delete(connectionId);
    this.heldBack.delete(connectionId);
    const removed = this.awareness.removeConnection(connectionId);
    if (removed.length > 0)
      this.emit({ kind: "broadcast", frame: OutgoingMessage.awareness(removed) });
    this.presenceEvents.push(...this.presence.connectionGone(connectionId, clean, this.nowMs));
    this.wakeFor(this.presence.nextDeadline());
  }

  private sendPresenceSnapshot(connectionId: ConnectionId): void {
    for (const page of pageSnapshot(this.presence.snapshot(), this.limits.snapshotPageBytes)) {
      this.emit({
        kind: "send",
        connectionId,
        frame: OutgoingMessage.extension({ type: "presence.snapshot", ...page }),
      });
    }
  }

  private wakeFor(at: number | null): void {
    this.wakeAt = earliest(this.wakeAt, at);
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
    return {
      v: 1,
      room: this.name,
      ...info,
      presenceEvents: info.presenceEvents ?? false,
      clients: this.awareness.ownedBy(info.connectionId),
    };
  }

  private emit(effect: RoomEffect): void {
    // A broadcast outside the batch (a removal, a peer's relay) must not overtake the changes
    // held back before it: a held-back state sent after its removal would bring a ghost back.
    if (effect.kind === "broadcast" && !this.batch.empty) this.guarded(() => this.drainFanout());
    this.effects.push(effect);
  }

  /** Ends a call: its presence events go to the subscribers in one frame, and its effects to the shell. */
  private flush(): RoomEffect[] {
    this.settleFanout();
    this.peers?.recordLocalChanges(this.presenceEvents);
    if (this.presenceEvents.length > 0) {
      // Queued webhook deliveries go out from the alarm, at once: never from the room's own path.
      if (this.presence.postsAny(this.presenceEvents)) this.wakeFor(this.nowMs);
      const subscribers = [...this.connections.values()]
        .filter((info) => info.presenceEvents)
        .map((info) => info.connectionId);
      if (subscribers.length > 0) {
        this.emit({
          kind: "multicast",
          connectionIds: subscribers,
          frame: OutgoingMessage.extension({
            type: "presence.events",
            events: this.presenceEvents,
          }),
        });
      }
      this.presenceEvents = [];
    }
    const effects = this.effects;
    this.effects = [];
    return effects;
  }
}

function earliest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** The part of `update` that `doc` does not hold yet; a malformed update is a bad frame. */
function newPartOf(update: Uint8Array, doc: Y.Doc): Uint8Array {
  try {
    return Y.diffUpdate(update, Y.encodeStateVector(doc));
  } catch {
    throw new ProtocolError(CloseCode.InvalidPayload, "malformed frame: invalid Yjs update");
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
