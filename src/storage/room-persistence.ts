import * as Y from "yjs";
import { STORAGE_ORIGIN } from "../core/change-origin";
import type { RoomStorage } from "./room-storage";

export interface CompactionThresholds {
  compactAfterUpdates: number;
  compactAfterBytes: number;
}

export interface PersistenceStats {
  snapshotBytes: number;
  logUpdates: number;
  logBytes: number;
  compactions: number;
}

/** Compaction runs on size and count, never on a timer (DESIGN.md, Storage). */
export function shouldCompact(stats: PersistenceStats, thresholds: CompactionThresholds): boolean {
  return (
    stats.logUpdates >= thresholds.compactAfterUpdates ||
    stats.logBytes >= thresholds.compactAfterBytes
  );
}

/**
 * One room's durable document: loads snapshot + log into a `Y.Doc`, appends every update,
 * and folds the log into a new snapshot when a threshold is crossed.
 */
export class RoomPersistence {
  private readonly stats: PersistenceStats = {
    snapshotBytes: 0,
    logUpdates: 0,
    logBytes: 0,
    compactions: 0,
  };

  constructor(
    private readonly room: string,
    private readonly storage: RoomStorage,
    private readonly thresholds: CompactionThresholds,
  ) {}

  /** Applies the stored state to `doc` (origin: storage, so it is not written back). */
  loadInto(doc: Y.Doc): void {
    const stored = this.storage.load(this.room);
    const parts = stored.snapshot ? [stored.snapshot, ...stored.log] : stored.log;
    if (parts.length > 0)
      Y.applyUpdate(
        doc,
        parts.length === 1 ? (parts[0] as Uint8Array) : Y.mergeUpdates(parts),
        STORAGE_ORIGIN,
      );
    this.stats.snapshotBytes = stored.snapshot?.byteLength ?? 0;
    this.stats.logUpdates = stored.log.length;
    this.stats.logBytes = stored.log.reduce((sum, update) => sum + update.byteLength, 0);
    if (shouldCompact(this.stats, this.thresholds)) this.compact(doc);
  }

  append(update: Uint8Array, doc: Y.Doc): void {
    this.storage.append(this.room, update);
    this.stats.logUpdates++;
    this.stats.logBytes += update.byteLength;
    if (shouldCompact(this.stats, this.thresholds)) this.compact(doc);
  }

  compact(doc: Y.Doc): void {
    const snapshot = Y.encodeStateAsUpdate(doc);
    this.storage.replaceWithSnapshot(this.room, snapshot);
    this.stats.snapshotBytes = snapshot.byteLength;
    this.stats.logUpdates = 0;
    this.stats.logBytes = 0;
    this.stats.compactions++;
  }

  /** Stored bytes: the basis of the shard's memory budget for loaded rooms. */
  get storedBytes(): number {
    return this.stats.snapshotBytes + this.stats.logBytes;
  }

  snapshotStats(): PersistenceStats {
    return { ...this.stats };
  }
}
