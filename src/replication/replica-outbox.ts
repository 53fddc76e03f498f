import * as Y from "yjs";
import type { MemberRecord } from "./replica-messages";

/**
 * What a replica has to send its peers, gathered over one batch window: local document
 * updates (merged into one when taken) and the latest record of each local member that changed.
 * The window throttles with a leading edge: a change after a quiet window goes out at once,
 * and changes that follow within `windowMs` of a send wait for the window's end and go as one.
 * A sparse edit pays no batching delay; a busy room sends at most one batch per window.
 */
export class ReplicaOutbox {
  private updates: Uint8Array[] = [];
  private records = new Map<number, MemberRecord>();
  private since: number | null = null;
  private lastSentAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly windowMs: number) {}

  addUpdate(update: Uint8Array, nowMs: number): void {
    this.updates.push(update);
    this.since ??= nowMs;
  }

  /** A newer record of a member replaces an older one still waiting: only the latest matters. */
  addRecord(record: MemberRecord, nowMs: number): void {
    this.records.set(record.clientId, record);
    this.since ??= nowMs;
  }

  /** When the waiting batch is due (Unix ms), or null when nothing waits. */
  get dueAt(): number | null {
    return this.since === null ? null : Math.max(this.since, this.lastSentAt + this.windowMs);
  }

  /** The batch, once its window has passed (`force`: at once); null when nothing is due. */
  take(nowMs: number, force = false): { update?: Uint8Array; members: MemberRecord[] } | null {
    const due = this.dueAt;
    if (due === null || (!force && nowMs < due)) return null;
    const update =
      this.updates.length === 0
        ? undefined
        : this.updates.length === 1
          ? this.updates[0]
          : Y.mergeUpdates(this.updates);
    const members = [...this.records.values()];
    this.updates = [];
    this.records = new Map();
    this.since = null;
    this.lastSentAt = nowMs;
    return { ...(update ? { update } : {}), members };
  }
}
