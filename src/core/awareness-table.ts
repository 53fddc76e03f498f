import type { AwarenessEntry } from "../protocol/awareness-codec";

export type ConnectionId = string;

interface AwarenessRecord {
  /** The clock relayed to the other connections: grows with every change, whatever the owner sends. */
  clock: number;
  /** The clock in the owner's own sequence: the last one it sent. */
  ownerClock: number;
  /** JSON text of the state; `"null"` once removed. */
  json: string;
  /** The connection that owns the clientID, or null once that connection is gone. */
  owner: ConnectionId | null;
  /** Set while another region's client holds the entry (its state is present, `owner` null). */
  region?: string;
}

export interface ApplyResult {
  /** Entries for every other connection, with the relay clocks they must see. */
  relay: AwarenessEntry[];
  /** The same changes for the sender, with its own clocks, so that its echo is a no-op for it. */
  echo: AwarenessEntry[];
  /** Entries ignored because the connection does not own their clientID. */
  dropped: number;
  /** The sender's owned entries changed: its socket attachment must be rewritten. */
  ownedChanged: boolean;
}

export const NULL_STATE_JSON = "null";

/** How far every change moves a relay clock: past the `+ 1` a snapshot may have handed out. */
const CHANGE_STEP = 2;

/**
 * A table loaded at millisecond `t` (Unix time) relays clocks from `t × 64` up. A table rebuilt
 * from nothing (hibernation dropped the released entries; a restart, a move to another shard
 * or region dropped everything) therefore relays every claim above any clock an earlier load
 * relayed, without having stored it, as long as no entry changed more than 32 times a
 * millisecond on average (each change moves a clock by 2) and the room was not loaded twice in
 * one millisecond. 64 a millisecond stays below 2^53 until the year 6429.
 */
export const CLOCK_STEPS_PER_MS = 2 ** 6;

/** Clocks from here up are relay clocks (a table loaded after 2001): a client's own count from 0. */
const RELAY_CLOCK_MIN = 1_000_000_000_000 * CLOCK_STEPS_PER_MS;

/**
 * The awareness states of one room, with ownership and the clock rules of the y-websocket
 * protocol. Pure: no timers (unlike y-protocols' `Awareness`, which starts an interval).
 *
 * Each rule is forced by how the stock client behaves:
 * - It relays every awareness change it receives, others' included, with the clocks it saw.
 *   So a connection owns the clientIDs it announces (up to a limit) and entries it sends for
 *   any other clientID are dropped, never applied: a late relay of a departed client's state
 *   must not resurrect it. A clientID held by a live connection is never taken over.
 * - It ignores an entry whose clock is not above the one it holds. A client that reconnects
 *   re-announces its old clock, below the clock of the removal the others received
 *   (yjs/y-websocket#122); and it keeps the clocks of the peers it dropped when it
 *   disconnected. So the clock relayed to others is the server's own, and the table keeps this
 *   invariant: no connection holds a clock above `relay clock + 1`, because a snapshot for one
 *   connection (on connect, or for queryAwareness) carries `relay clock + 1` and nothing else
 *   does; every update and claim is relayed at `relay clock + 2` or more, and a removal at
 *   `relay clock + 1` (y-protocols accepts a null at an equal clock), so every connection
 *   accepts them. Snapshots never change the stored clock, so the clock kept in
 *   a socket attachment stays exact across hibernation.
 * - It adopts any entry for itself whose clock is above its own, overwriting its local state.
 *   So the sender's own echo carries the sender's clock, never the relay clock: a stale echo
 *   can then never roll a client back, and no relay loop can start.
 */
export class AwarenessTable {
  private readonly records = new Map<number, AwarenessRecord>();
  private readonly owned = new Map<ConnectionId, Set<number>>();

  /** Relay clocks of this table start here: above every clock an earlier load of the room relayed. */
  private readonly clockFloor: number;
  /**
   * Set by `advance` (replicating rooms only; 0 otherwise): `now × 64`, below which no change
   * is relayed and no snapshot entry is handed out. A client that moved from another region's
   * replica holds the clocks that replica relayed, from its own, unrelated sequence (loaded at
   * another time); the stock client ignores every entry not above them, so here it would see
   * none of the others until our clocks caught up, which they never do. Relay clocks that follow
   * time (as a hybrid logical clock) are above anything relayed anywhere earlier, given clocks in
   * sync across regions and the rate `CLOCK_STEPS_PER_MS` allows (found by the simulator).
   */
  private timeFloor = 0;

  /** `loadedAtMs`: when the room was loaded, in Unix milliseconds (time is passed in). */
  constructor(
    private readonly maxClientIdsPerConnection: number,
    loadedAtMs = 0,
  ) {
    this.clockFloor = Math.floor(loadedAtMs) * CLOCK_STEPS_PER_MS;
  }

  /** Relay clocks follow time from here on (`timeFloor`): the room calls this with each call's time. */
  advance(nowMs: number): void {
    this.timeFloor = Math.max(this.timeFloor, Math.floor(nowMs) * CLOCK_STEPS_PER_MS);
  }

  /**
   * Applies entries sent by a local connection. An entry another region's client holds is
   * claimed only where `mayTakeOver` allows it (the same user, moving region).
   */
  applyFromConnection(
    connection: ConnectionId,
    entries: readonly AwarenessEntry[],
    mayTakeOver: (clientId: number) => boolean = () => false,
  ): ApplyResult {
    const result: ApplyResult = { relay: [], echo: [], dropped: 0, ownedChanged: false };
    for (const entry of entries) {
      const record = this.records.get(entry.clientId);
      if (record?.owner === connection) {
        this.applyOwned(record, entry, result);
      } else if (
        (record === undefined ||
          (record.owner === null &&
            (record.region === undefined ||
              (entry.clock < RELAY_CLOCK_MIN && mayTakeOver(entry.clientId))))) &&
        entry.json !== NULL_STATE_JSON &&
        this.canClaim(connection)
      ) {
        this.claim(connection, entry, record, result);
      } else {
        result.dropped++; // not ours: apply nothing, and never move its clock
      }
    }
    return result;
  }

  /** Removes a closed connection's entries: each becomes `null` with clock + 1, as the reference server does. */
  removeConnection(connection: ConnectionId): AwarenessEntry[] {
    const ids = this.owned.get(connection);
    this.owned.delete(connection);
    const removed: AwarenessEntry[] = [];
    for (const clientId of ids ?? []) {
      const record = this.records.get(clientId);
      if (!record || record.owner !== connection) continue;
      record.owner = null;
      if (record.json !== NULL_STATE_JSON) {
        // + 1 as the reference server does: enough even for a connection that got the `+ 1` of a
        // snapshot, since y-protocols accepts a null at an equal clock.
        record.clock = Math.max(record.clock, this.timeFloor) + 1;
        record.json = NULL_STATE_JSON;
        removed.push({ clientId, clock: record.clock, json: NULL_STATE_JSON });
      }
    }
    return removed;
  }

  /**
   * Another region's client set its state (`json`), or it is gone (`null`). An entry a local
   * connection holds is never touched: the caller decides between two owners. Returns the
   * entry to relay to local connections, or null when nothing changed for them.
   */
  applyRemote(clientId: number, region: string, json: string | null): AwarenessEntry | null {
    const record = this.records.get(clientId);
    if (record !== undefined && record.owner !== null) return null;
    if (json === null || json === NULL_STATE_JSON) {
      if (record === undefined || record.json === NULL_STATE_JSON) return null;
      delete record.region;
      // As a local close: y-protocols accepts a null at an equal clock.
      record.clock = Math.max(record.clock, this.timeFloor) + 1;
      record.json = NULL_STATE_JSON;
      return { clientId, clock: record.clock, json: NULL_STATE_JSON };
    }
    if (record?.json === json && record.region === region) return null;
    const clock = Math.max(this.clockFloor, this.timeFloor, record?.clock ?? 0) + CHANGE_STEP;
    this.records.set(clientId, { clock, ownerClock: 0, json, owner: null, region });
    return { clientId, clock, json };
  }

  /** The state of `clientId` while a local connection holds it (JSON text), else null. */
  localState(clientId: number): string | null {
    const record = this.records.get(clientId);
    return record?.owner != null && record.json !== NULL_STATE_JSON ? record.json : null;
  }

  /** True while a local connection holds `clientId`. */
  heldLocally(clientId: number): boolean {
    return this.records.get(clientId)?.owner != null;
  }

  /** Re-registers a connection's owned entries after the shard woke from hibernation. */
  restoreConnection(connection: ConnectionId, entries: readonly OwnedEntry[]): void {
    const ids = new Set<number>();
    for (const entry of entries) {
      this.records.set(entry.clientId, {
        clock: entry.clock,
        ownerClock: entry.ownerClock,
        json: entry.json,
        owner: connection,
      });
      ids.add(entry.clientId);
    }
    this.owned.set(connection, ids);
  }

  /** The entries a connection owns, as stored in its socket attachment. */
  ownedBy(connection: ConnectionId): OwnedEntry[] {
    const entries: OwnedEntry[] = [];
    for (const clientId of this.owned.get(connection) ?? []) {
      const record = this.records.get(clientId);
      if (record)
        entries.push({
          clientId,
          clock: record.clock,
          ownerClock: record.ownerClock,
          json: record.json,
        });
    }
    return entries;
  }

  /**
   * Every present state for one connection that may hold stale clocks (a new connection, or a
   * queryAwareness), each at `relay clock + 1`: a stock client that reconnects still holds the
   * clocks of the peers it dropped on disconnect and ignores an equal one, so it would not see
   * them until their next 15 s renewal. The asker's own entries are left out: it knows them,
   * and at a relay clock above its own it would adopt them over its newer local state.
   * A replicating room first raises a clock below `timeFloor` to it (the asker may come from
   * another region), which keeps the invariant: no connection holds more than relay clock + 1.
   */
  snapshotForResync(asker: ConnectionId): AwarenessEntry[] {
    const entries: AwarenessEntry[] = [];
    for (const [clientId, record] of this.records) {
      if (record.json !== NULL_STATE_JSON && record.owner !== asker) {
        // (An owner's attachment may then hold a lower clock: after a wake-up, `timeFloor` is
        // above every clock handed out before, so its next change is relayed above them anyway.)
        record.clock = Math.max(record.clock, this.timeFloor);
        entries.push({ clientId, clock: record.clock + 1, json: record.json });
      }
    }
    return entries;
  }

  /** Every present (non-null) state, with relay clocks. */
  presentEntries(): AwarenessEntry[] {
    const entries: AwarenessEntry[] = [];
    for (const [clientId, record] of this.records) {
      if (record.json !== NULL_STATE_JSON)
        entries.push({ clientId, clock: record.clock, json: record.json });
    }
    return entries;
  }

  /** Present entries with their owner, for presence queries. */
  presentWithOwners(): Array<AwarenessEntry & { owner: ConnectionId }> {
    const entries: Array<AwarenessEntry & { owner: ConnectionId }> = [];
    for (const [clientId, record] of this.records) {
      if (record.json !== NULL_STATE_JSON && record.owner !== null) {
        entries.push({ clientId, clock: record.clock, json: record.json, owner: record.owner });
      }
    }
    return entries;
  }

  private canClaim(connection: ConnectionId): boolean {
    return (this.owned.get(connection)?.size ?? 0) < this.maxClientIdsPerConnection;
  }

  private applyOwned(record: AwarenessRecord, entry: AwarenessEntry, result: ApplyResult): void {
    if (entry.clock <= record.ownerClock && entry.json === record.json) return; // a duplicate
    // Frames over one socket arrive in order, so the owner's latest frame is its latest intent.
    record.ownerClock = entry.clock;
    record.clock = Math.max(record.clock, this.timeFloor) + CHANGE_STEP;
    record.json = entry.json;
    this.changed(record, entry, result);
  }

  private claim(
    connection: ConnectionId,
    entry: AwarenessEntry,
    previous: AwarenessRecord | undefined,
    result: ApplyResult,
  ): void {
    // Others may hold this clientID's previous relay clock (+ 1 after a snapshot or a removal);
    // if this load of the room never saw it, it was relayed by an earlier load, below the floor.
    const clock = Math.max(this.clockFloor, this.timeFloor, previous?.clock ?? 0) + CHANGE_STEP;
    // A claim replaces whatever another region held under this clientID (no `region`).
    const record: AwarenessRecord = {
      clock,
      ownerClock: entry.clock,
      json: entry.json,
      owner: connection,
    };
    this.records.set(entry.clientId, record);
    let ids = this.owned.get(connection);
    if (!ids) {
      ids = new Set();
      this.owned.set(connection, ids);
    }
    ids.add(entry.clientId);
    this.changed(record, entry, result);
  }

  private changed(record: AwarenessRecord, entry: AwarenessEntry, result: ApplyResult): void {
    result.relay.push({ clientId: entry.clientId, clock: record.clock, json: record.json });
    result.echo.push({ clientId: entry.clientId, clock: record.ownerClock, json: record.json });
    result.ownedChanged = true;
  }
}

/** An owned entry as kept across hibernation: both clocks, so the rules above survive a wake-up. */
export interface OwnedEntry extends AwarenessEntry {
  ownerClock: number;
}
