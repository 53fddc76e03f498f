import type { AwarenessEntry } from "../protocol/awareness-codec";

export type ConnectionId = string;

interface AwarenessRecord {
  /** The highest clock this table has relayed or observed for the clientID. */
  clock: number;
  /** JSON text of the state; `"null"` once removed. */
  json: string;
  /** The connection that owns the clientID, or null once that connection is gone. */
  owner: ConnectionId | null;
}

export interface ApplyResult {
  /** Entries to relay to every connection, with the clocks receivers must see. */
  changed: AwarenessEntry[];
  /** Entries ignored because the connection does not own their clientID. */
  dropped: number;
  /** Connections whose owned entries changed, so their socket attachments must be rewritten. */
  rewrite: Set<ConnectionId>;
}

const NULL_JSON = "null";

/**
 * The awareness states of one room, with ownership and the clock rules of the y-websocket
 * protocol. Pure: no timers (unlike y-protocols' `Awareness`, which starts an interval).
 *
 * Rules, each kept for a reason the stock client forces on us:
 * - A connection owns the clientIDs it announces, up to a limit; entries it sends for other
 *   clientIDs are dropped. The stock client relays every awareness change it receives, so an
 *   honest client sends such entries constantly: they must be ignored, never applied (a late
 *   relay of a departed client's state would resurrect it).
 * - Relayed clocks only grow per clientID. A stock client ignores an entry whose clock is not
 *   above what it has seen, so an owner's update that arrives with a stale clock (a reconnect
 *   after the server announced its removal with clock + 1, yjs/y-websocket#122) is relayed with
 *   the highest clock seen + 1.
 * - An owner's echo of an entry the table already holds (same or older clock, same state) is a
 *   no-op, which is what stops the relay loop between server and client.
 */
export class AwarenessTable {
  private readonly records = new Map<number, AwarenessRecord>();
  private readonly owned = new Map<ConnectionId, Set<number>>();

  constructor(private readonly maxClientIdsPerConnection: number) {}

  /** Applies entries sent by a local connection. */
  applyFromConnection(connection: ConnectionId, entries: readonly AwarenessEntry[]): ApplyResult {
    const result: ApplyResult = { changed: [], dropped: 0, rewrite: new Set() };
    for (const entry of entries) {
      const record = this.records.get(entry.clientId);
      if (record?.owner === connection) {
        this.applyOwned(record, entry, result);
      } else if (entry.json !== NULL_JSON && this.canClaim(connection)) {
        this.claim(connection, entry, record, result);
      } else {
        // Not ours: remember its clock (so a later claim relays above it), apply nothing.
        if (record && entry.clock > record.clock) record.clock = entry.clock;
        result.dropped++;
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
      if (record.json !== NULL_JSON) {
        record.clock += 1;
        record.json = NULL_JSON;
        removed.push({ clientId, clock: record.clock, json: NULL_JSON });
      }
    }
    return removed;
  }

  /** Re-registers a connection's owned entries after the shard woke from hibernation. */
  restoreConnection(connection: ConnectionId, entries: readonly AwarenessEntry[]): void {
    const ids = new Set<number>();
    for (const entry of entries) {
      this.records.set(entry.clientId, { clock: entry.clock, json: entry.json, owner: connection });
      ids.add(entry.clientId);
    }
    this.owned.set(connection, ids);
  }

  /** The entries a connection owns, as stored in its socket attachment. */
  ownedBy(connection: ConnectionId): AwarenessEntry[] {
    const entries: AwarenessEntry[] = [];
    for (const clientId of this.owned.get(connection) ?? []) {
      const record = this.records.get(clientId);
      if (record) entries.push({ clientId, clock: record.clock, json: record.json });
    }
    return entries;
  }

  /** Every present (non-null) state: what a new connection or a queryAwareness receives. */
  presentEntries(): AwarenessEntry[] {
    const entries: AwarenessEntry[] = [];
    for (const [clientId, record] of this.records) {
      if (record.json !== NULL_JSON)
        entries.push({ clientId, clock: record.clock, json: record.json });
    }
    return entries;
  }

  /** Present entries with their owner, for presence queries. */
  presentWithOwners(): Array<AwarenessEntry & { owner: ConnectionId }> {
    const entries: Array<AwarenessEntry & { owner: ConnectionId }> = [];
    for (const [clientId, record] of this.records) {
      if (record.json !== NULL_JSON && record.owner !== null) {
        entries.push({ clientId, clock: record.clock, json: record.json, owner: record.owner });
      }
    }
    return entries;
  }

  private canClaim(connection: ConnectionId): boolean {
    return (this.owned.get(connection)?.size ?? 0) < this.maxClientIdsPerConnection;
  }

  private applyOwned(record: AwarenessRecord, entry: AwarenessEntry, result: ApplyResult): void {
    if (entry.clock <= record.clock && entry.json === record.json) return; // echo or duplicate
    // Over one socket the owner's frames arrive in order, so its latest frame is its latest
    // intent even when its clock lags behind the one we relayed.
    record.clock = entry.clock > record.clock ? entry.clock : record.clock + 1;
    record.json = entry.json;
    result.changed.push({ clientId: entry.clientId, clock: record.clock, json: record.json });
    result.rewrite.add(record.owner as ConnectionId);
  }

  private claim(
    connection: ConnectionId,
    entry: AwarenessEntry,
    record: AwarenessRecord | undefined,
    result: ApplyResult,
  ): void {
    if (record?.owner != null) {
      // Takeover: a reconnecting client whose old socket the server has not seen close yet.
      this.owned.get(record.owner)?.delete(entry.clientId);
      result.rewrite.add(record.owner);
    }
    // Bump above every clock seen: receivers may still hold this clientID's previous clock,
    // including the clock + 1 of the removal we announced when its last connection closed.
    const clock = Math.max(entry.clock, record?.clock ?? 0) + 1;
    this.records.set(entry.clientId, { clock, json: entry.json, owner: connection });
    let ids = this.owned.get(connection);
    if (!ids) {
      ids = new Set();
      this.owned.set(connection, ids);
    }
    ids.add(entry.clientId);
    result.changed.push({ clientId: entry.clientId, clock, json: entry.json });
    result.rewrite.add(connection);
  }
}
