import * as Y from "yjs";
import type { AwarenessTable } from "../core/awareness-table";
import type { ChangeOrigin } from "../core/change-origin";
import type { PresenceSource, RoomEffect } from "../core/room-replica";
import { StorageFailure } from "../core/storage-failure";
import { missingDependency } from "../core/update-integrity";
import type { PresenceRoster } from "../presence/presence-roster";
import type { LeaveReason, PresenceEvent } from "../presence/presence-schema";
import type { AwarenessEntry } from "../protocol/awareness-codec";
import { OutgoingMessage } from "../protocol/outgoing-message";
import { MemberVersions } from "./member-versions";
import type { MemberRecord, OutrankedRecord } from "./replica-messages";
import { ReplicaOutbox } from "./replica-outbox";

/** What a room lends its exchange with peer regions: its state, its clock and its outputs. */
export interface ExchangeHost {
  readonly doc: Y.Doc;
  readonly awareness: AwarenessTable;
  presence(): PresenceRoster;
  /** The time of the room's current call (Unix ms). */
  now(): number;
  emit(effect: RoomEffect): void;
  /** Presence events of the current call (the room sends them to subscribers when it ends). */
  record(events: readonly PresenceEvent[]): void;
}

/** Peers' updates kept waiting for what they depend on; anti-entropy repairs any dropped beyond. */
const MAX_WAITING_UPDATES = 64;

/**
 * One room's replica's side of replication between regions (DESIGN.md, "Replication between
 * regions"): it numbers the changes to this region's members (`MemberVersions`), gathers them
 * and the local document updates into batches (`ReplicaOutbox`), and applies what peer regions
 * send: their document updates once everything they build on is here, and their members'
 * records where they outrank what is held, to the room's awareness table (relayed to local
 * stock clients) and presence roster. Pure, like the room it belongs to: every call happens
 * inside one of the room's calls, which gives it the time and flushes its effects.
 */
export class PeerExchange {
  private readonly versions: MemberVersions;
  private readonly outbox: ReplicaOutbox;
  /** Local members changed in the current call, with the leave reason of those that left. */
  private readonly changed = new Map<number, LeaveReason | null>();
  /** When each peer region was last heard from (Unix ms). */
  private readonly heardAt = new Map<string, number>();
  /** Peers' updates that depend on content not here yet, oldest first (`applyPeerUpdate`). */
  private readonly waiting: Array<{ from: string; update: Uint8Array }> = [];

  constructor(
    readonly region: string,
    batchMs: number,
    loadedAtMs: number,
    private readonly host: ExchangeHost,
  ) {
    this.versions = new MemberVersions(loadedAtMs);
    this.outbox = new ReplicaOutbox(batchMs);
  }

  get waitingUpdates(): number {
    return this.waiting.length;
  }

  get batchDueAt(): number | null {
    return this.outbox.dueAt;
  }

  takeBatch(
    nowMs: number,
    force: boolean,
  ): { update?: Uint8Array; members: MemberRecord[] } | null {
    return this.outbox.take(nowMs, force);
  }

  /** A local member changed (its record goes out with the batch). */
  markChanged(clientId: number): void {
    this.changed.set(clientId, this.changed.get(clientId) ?? null);
  }

  /** A local connection's document update, for the peers (one hop: a peer's is never forwarded). */
  addLocalUpdate(update: Uint8Array, nowMs: number): void {
    this.outbox.addUpdate(update, nowMs);
  }

  /** A peer's batch: its update applied (any order), its members' records where they outrank. */
  applyBatch(
    from: string,
    batch: { update?: Uint8Array; members: readonly MemberRecord[] },
    acceptMembers: boolean,
  ): void {
    this.heardAt.set(from, this.host.now());
    if (batch.update) this.applyPeerUpdate(from, batch.update);
    if (acceptMembers) this.applyRecords(from, batch.members);
  }

  /**
   * A peer's side of anti-entropy: its update and members are applied like a batch; members it
   * owned that its full list lacks (and it numbered no later than `asOf`) left there while a
   * record was lost. Returns the peer's records outranked here by another region's.
   */
  applySync(
    from: string,
    sync: {
      update?: Uint8Array;
      members: readonly MemberRecord[];
      asOf: number;
      outranked?: readonly OutrankedRecord[];
    },
    acceptMembers: boolean,
  ): OutrankedRecord[] {
    this.heardAt.set(from, this.host.now());
    if (sync.update) this.applyPeerUpdate(from, sync.update);
    if (!acceptMembers) return [];
    for (const { clientId, version } of sync.outranked ?? []) {
      // The peer holds a later record of another region for a client whose live connection
      // is here: ours is numbered above it (whoever sent this, it only renumbers our own).
      this.versions.observe(version);
      if (this.host.awareness.heldLocally(clientId)) this.markChanged(clientId);
    }
    const outranked = this.applyRecords(from, sync.members);
    const listed = new Set(sync.members.map((record) => record.clientId));
    for (const clientId of this.versions.ownedBy(from)) {
      const held = this.versions.of(clientId);
      if (listed.has(clientId) || !held || held.lost || held.version > sync.asOf) continue;
      this.dropRemote(clientId, from, "timeout");
      this.versions.set(clientId, held.version, from);
    }
    return outranked;
  }

  /** Every member this region owns, with its version, and the clock they are all at or below. */
  ownRecords(): { members: MemberRecord[]; asOf: number } {
    const members: MemberRecord[] = [];
    for (const clientId of this.host.presence().localClientIds()) {
      let held = this.versions.of(clientId);
      if (held?.region !== this.region) {
        this.versions.set(clientId, this.versions.next(), this.region);
        held = this.versions.of(clientId);
      }
      const record = this.localRecord(clientId, held?.version ?? 0, "left");
      if (record) members.push(record);
    }
    return { members, asOf: this.versions.asOf };
  }

  /** `region` was declared dead: its members leave with `region_lost`, its cursors vanish. */
  regionLost(region: string): void {
    const relay: AwarenessEntry[] = [];
    for (const clientId of this.versions.loseRegion(region)) {
      const entry = this.host.awareness.applyRemote(clientId, region, null);
      if (entry) relay.push(entry);
    }
    if (relay.length > 0)
      this.host.emit({ kind: "broadcast", frame: OutgoingMessage.awareness(relay) });
    this.host.record(this.host.presence().regionLost(region, this.host.now()));
  }

  /** Which regions the room's presence came from, and when each was last heard from. */
  presenceSources(nowMs: number): PresenceSource[] {
    const counts = new Map<string, number>();
    for (const member of this.host.presence().memberList())
      counts.set(member.region, (counts.get(member.region) ?? 0) + 1);
    const regions = new Set([...counts.keys(), ...this.heardAt.keys(), this.region]);
    return [...regions].sort().map((region) => ({
      region,
      members: counts.get(region) ?? 0,
      heardAt: region === this.region ? nowMs : (this.heardAt.get(region) ?? null),
    }));
  }

  /** The other regions whose members the room holds. */
  memberRegions(): string[] {
    const regions = this.host.presence().regions();
    regions.delete(this.region);
    return [...regions].sort();
  }

  /** Numbers the current call's changes to local members and puts them in the outbox. */
  recordLocalChanges(events: readonly PresenceEvent[]): void {
    // Members of this region that left in this call: theirs is a tombstone even when the
    // versions never knew them (a grace that ran out while the room was unloaded ends as the
    // room loads, before anything was numbered; peers would keep the member otherwise).
    const left = new Set<number>();
    for (const event of events) {
      if (!("member" in event) || event.member.region !== this.region) continue;
      const reason = event.type === "member.leave" ? event.reason : null;
      if (reason !== null) left.add(event.member.clientId);
      this.changed.set(
        event.member.clientId,
        reason ?? this.changed.get(event.member.clientId) ?? null,
      );
    }
    const presence = this.host.presence();
    for (const [clientId, reason] of this.changed) {
      const held = this.versions.of(clientId);
      const member = presence.member(clientId);
      // A tombstone only for a member this region owned; nothing for another region's.
      if (!member && held?.region !== this.region && !(left.has(clientId) && held === undefined))
        continue;
      const version = this.versions.next();
      const record = this.localRecord(clientId, version, reason ?? "left");
      if (!record) continue;
      this.versions.set(clientId, version, this.region);
      this.outbox.addRecord(record, this.host.now());
    }
    this.changed.clear();
  }

  /**
   * A peer's update, applied once everything it builds on is here. Delivery is unordered and
   * lossy, so an update may arrive before one it depends on (a batch overtaken, or lost until
   * anti-entropy repairs it). Yjs would keep it pending inside the document and merge the pending
   * part into every later encoding, the sync step 2 sent to clients included; a client's next
   * step 2 (after a reconnect, in any region) then carries that gap, and the room refuses it and
   * closes the socket, again on every retry (found by the replication simulator). So it waits
   * here, outside the document, until what it lacks arrives.
   */
  private applyPeerUpdate(from: string, update: Uint8Array): void {
    const doc = this.host.doc;
    this.waiting.push({ from, update });
    // Each update applied may complete others that wait.
    for (let progress = true; progress; ) {
      progress = false;
      for (const [index, entry] of this.waiting.entries()) {
        let fresh: Uint8Array;
        let decoded: ReturnType<typeof Y.decodeUpdate>;
        try {
          fresh = Y.diffUpdate(entry.update, Y.encodeStateVector(doc));
          decoded = Y.decodeUpdate(fresh);
        } catch {
          // An update Yjs cannot read changes nothing; anti-entropy brings the real content.
          this.waiting.splice(index, 1);
          progress = true;
          break;
        }
        if (missingDependency(doc, decoded) !== null) continue;
        this.waiting.splice(index, 1);
        progress = true;
        if (decoded.structs.length > 0 || decoded.ds.clients.size > 0) {
          const origin: ChangeOrigin = { kind: "peer", region: entry.from };
          try {
            Y.applyUpdate(doc, fresh, origin);
          } catch (error) {
            if (error instanceof StorageFailure) throw error;
          }
        }
        break;
      }
    }
    // Anti-entropy repairs whatever is dropped here: the oldest wait longest, they go first.
    if (this.waiting.length > MAX_WAITING_UPDATES)
      this.waiting.splice(0, this.waiting.length - MAX_WAITING_UPDATES);
  }

  /**
   * Applies a peer's records of its own members; returns those outranked here by another
   * region's record. Their sender may hold the client's live connection (it moved there while
   * the other region, not hearing of it, ended its grace later): only it can settle that, by
   * numbering its record above, and it would never learn otherwise, since anti-entropy carries
   * each region's own members only (found by the simulator).
   */
  private applyRecords(from: string, records: readonly MemberRecord[]): OutrankedRecord[] {
    const { awareness } = this.host;
    const presence = this.host.presence();
    const relay: AwarenessEntry[] = [];
    const outranked: OutrankedRecord[] = [];
    for (const record of records) {
      // A region speaks only for its own members (invariant 4).
      if (record.region !== from || (record.member && record.member.region !== from)) continue;
      this.versions.observe(record.version);
      if (!this.versions.outranks(record)) {
        const held = this.versions.of(record.clientId);
        if (held && held.region !== from && !held.lost)
          outranked.push({ clientId: record.clientId, version: held.version });
        continue;
      }
      if (awareness.heldLocally(record.clientId)) {
        // A live local connection holds this client: its claim stands. A stale leave or grace
        // from the region it came from is answered with a record numbered above it.
        if (record.member?.status !== "present" || record.awareness === null)
          this.markChanged(record.clientId);
        continue;
      }
      this.versions.set(record.clientId, record.version, record.region);
      const entry = awareness.applyRemote(
        record.clientId,
        record.region,
        record.member ? record.awareness : null,
      );
      if (entry) relay.push(entry);
      this.host.record(
        presence.applyRemote(
          record.clientId,
          record.member,
          record.reason ?? "left",
          this.host.now(),
        ),
      );
    }
    if (relay.length > 0)
      this.host.emit({ kind: "broadcast", frame: OutgoingMessage.awareness(relay) });
    return outranked;
  }

  private dropRemote(clientId: number, region: string, reason: LeaveReason): void {
    const entry = this.host.awareness.applyRemote(clientId, region, null);
    if (entry) this.host.emit({ kind: "broadcast", frame: OutgoingMessage.awareness([entry]) });
    const presence = this.host.presence();
    if (presence.member(clientId)?.region === region)
      this.host.record(presence.applyRemote(clientId, null, reason, this.host.now()));
  }

  /** The record of a local member as it stands (or a tombstone once it left), at `version`. */
  private localRecord(clientId: number, version: number, reason: LeaveReason): MemberRecord | null {
    const member = this.host.presence().member(clientId);
    if (member && member.region === this.region) {
      const awareness = this.host.awareness.localState(clientId);
      return { clientId, version, region: this.region, member, awareness };
    }
    if (member) return null; // another region holds it now
    return { clientId, version, region: this.region, member: null, awareness: null, reason };
  }
}
