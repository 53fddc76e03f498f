import type { LeaveReason, Member } from "../presence/presence-schema";

/**
 * What one region's replica of a room tells another (DESIGN.md, "Replication between
 * regions"). Plain types, so the cores and the simulator run over any region names; the RPC
 * boundary checks them with `replication-schema.ts`.
 */

/**
 * One member as its owning region last set it. `version` is the room's Lamport clock: a
 * region numbers each change above every version it has seen, so a takeover (a client that
 * reconnected in another region) outranks what it replaces. Equal versions break by region.
 */
export interface MemberRecord {
  clientId: number;
  version: number;
  /** The owning region: the only one allowed to send this record. */
  region: string;
  /** The member as its owner holds it; null once it left. */
  member: Member | null;
  /** The awareness state's JSON text while its connection is open (awareness has no grace); null otherwise. */
  awareness: string | null;
  /** Why it left, with `member: null`. */
  reason?: LeaveReason;
}

/** Local document updates (merged into one) and member changes of one batch window. */
export interface BatchMessage {
  type: "batch";
  room: string;
  from: string;
  update?: Uint8Array;
  members: MemberRecord[];
}

/** A client whose record from the receiver lost here to another region's later one (`version`). */
export interface OutrankedRecord {
  clientId: number;
  version: number;
}

/**
 * Anti-entropy: the sender's state vector and every member it owns, as of its clock `asOf`.
 * The receiver answers with what the sender lacks (a batch) and, when `reply` is set, a sync of
 * its own. From the home it carries the room's replica set (`peers`); `leaving` asks the home
 * to forget the sender.
 */
export interface SyncMessage {
  type: "sync";
  room: string;
  from: string;
  stateVector: Uint8Array;
  members: MemberRecord[];
  asOf: number;
  reply: boolean;
  peers?: string[];
  leaving?: boolean;
  /** The sender's delete-set fingerprint: a receiver with the same one need not send its deletions. */
  deleteSetDigest?: number;
  /** With `leaving`: what the home lacks, from its state vector. */
  update?: Uint8Array;
  /**
   * In an answer: the receiver's records that the sender holds outranked by another region's.
   * A receiver that holds such a client's live connection numbers its record above.
   */
  outranked?: OutrankedRecord[];
}

export type ReplicaMessage = BatchMessage | SyncMessage;

/** A message for one peer region. */
export interface Addressed {
  to: string;
  message: ReplicaMessage;
}
