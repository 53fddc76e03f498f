import * as Y from "yjs";
import type { AwarenessEntry } from "../protocol/awareness-codec";
import { OutgoingMessage } from "../protocol/outgoing-message";
import type { ConnectionId } from "./awareness-table";

/**
 * How a room coalesces its fan-out (DESIGN.md, invariant "encode once"): the changes that
 * arrive close together leave as one frame per socket and one document write, instead of one
 * per change. See `FanoutBatch.windowMs`.
 */
export interface FanoutOptions {
  /** The longest a change may wait to be coalesced (ms); 0 sends every change at once. */
  maxCoalesceMs: number;
  /** Frames per second one room may send to its sockets before its changes coalesce. */
  sendsPerSecond: number;
  /** Document writes per second one room may make before its updates coalesce into one. */
  writesPerSecond: number;
}

/** What a drained batch asks the room to do: write and fan out one merged update, and the awareness frames. */
export interface DrainedBatch {
  /** The updates of the window merged into one (null: none); written once, then broadcast. */
  update: Uint8Array | null;
  /** Connections the merged update need not go to: the one that sent all of it. */
  updateExcept: ConnectionId | undefined;
  /** The same awareness frame to every connection that sent no awareness in the window. */
  awarenessFrame: Uint8Array | null;
  awarenessExcept: ReadonlySet<ConnectionId>;
  /** Each sender's own frame: the others' entries at relay clocks, its own entries at its clocks. */
  awarenessPerSender: Array<{ connectionId: ConnectionId; frame: Uint8Array }>;
}

/**
 * The changes a room holds back for one coalescing window. Pure: the room decides when to
 * drain it (leading edge: a change after a quiet spell goes at once, later ones wait for the
 * window's end), and the window comes from `windowMs`.
 */
export class FanoutBatch {
  private updates: Uint8Array[] = [];
  private updateBytes = 0;
  /** The connections whose updates are in the batch; `null` stands for a peer region or storage. */
  private readonly updateSources = new Set<ConnectionId | null>();
  /** The newest relayed entry per clientID: a later change of a client replaces its earlier one. */
  private readonly relay = new Map<number, AwarenessEntry>();
  /** Per sending connection, its own entries at its own clocks (the echo). */
  private readonly echoes = new Map<ConnectionId, Map<number, AwarenessEntry>>();

  constructor(private readonly options: FanoutOptions) {}

  get empty(): boolean {
    return this.updates.length === 0 && this.relay.size === 0;
  }

  /** Bytes of document updates waiting for their write (counted against the document limit). */
  get pendingUpdateBytes(): number {
    return this.updateBytes;
  }

  get hasUpdates(): boolean {
    return this.updates.length > 0;
  }

  addUpdate(update: Uint8Array, source: ConnectionId | null): void {
    this.updates.push(update);
    this.updateBytes += update.byteLength;
    this.updateSources.add(source);
  }

  addAwareness(
    source: ConnectionId,
    relay: readonly AwarenessEntry[],
    echo: readonly AwarenessEntry[],
  ): void {
    for (const entry of relay) this.relay.set(entry.clientId, entry);
    let own = this.echoes.get(source);
    if (!own) {
      own = new Map();
      this.echoes.set(source, own);
    }
    for (const entry of echo) own.set(entry.clientId, entry);
  }

  /**
   * How long this batch may gather, given the room's open connections: long enough that the
   * room stays within its send and write budgets, never longer than `maxCoalesceMs`. A room
   * of a few sockets with no document change pending therefore sends almost at once, and a
   * crowded or busy one coalesces.
   */
  windowMs(connections: number): number {
    const { maxCoalesceMs, sendsPerSecond, writesPerSecond } = this.options;
    if (maxCoalesceMs === 0) return 0;
    const forSends = (connections * 1000) / sendsPerSecond;
    const forWrites = this.updates.length > 0 ? 1000 / writesPerSecond : 0;
    return Math.min(maxCoalesceMs, Math.max(forSends, forWrites));
  }

  /** Empties the batch into what the room writes and sends; each frame is encoded once. */
  drain(): DrainedBatch {
    const update =
      this.updates.length === 0
        ? null
        : this.updates.length === 1
          ? (this.updates[0] as Uint8Array)
          : Y.mergeUpdates(this.updates);
    const only = this.updateSources.size === 1 ? [...this.updateSources][0] : undefined;
    const drained: DrainedBatch = {
      update,
      updateExcept: only ?? undefined,
      awarenessFrame: null,
      awarenessExcept: new Set(this.echoes.keys()),
      awarenessPerSender: [],
    };
    if (this.relay.size > 0) {
      const relayed = [...this.relay.values()];
      drained.awarenessFrame = OutgoingMessage.awareness(relayed);
      for (const [connectionId, own] of this.echoes) {
        const entries = relayed.filter((entry) => !own.has(entry.clientId));
        entries.push(...own.values());
        drained.awarenessPerSender.push({
          connectionId,
          frame: OutgoingMessage.awareness(entries),
        });
      }
    }
    this.updates = [];
    this.updateBytes = 0;
    this.updateSources.clear();
    this.relay.clear();
    this.echoes.clear();
    return drained;
  }
}
