import * as Y from "yjs";
import type { PresenceWrite } from "../presence/presence-store";
import { formerOwners, ownerIndex, type ShardLayout } from "../routing/shard-layout";
import type { StoredRoom } from "../storage/room-storage";

/**
 * Moving rooms between the shards of one region after a resize (DESIGN.md, "Routing"), as
 * plain functions over stored state: which rooms a shard must hand away, which shards a new
 * owner pulls from, what a hand-off carries, and when the old copy may go. The shard shell
 * (durable-objects/shard-moves.ts) and the rebalance simulator run exactly these.
 *
 * The protocol, for one room moving from shard A to shard B of a region:
 * 1. B pulls (on the room's first load at the new epoch, or when A asks it to): it sends A its
 *    state vector.
 * 2. A, which no longer owns the room at that epoch, marks it moved out (from then on it applies
 *    nothing for it and closes its sockets with `moved`), and answers with its document beyond
 *    B's vector and its presence (members with their graces, sequence, history).
 * 3. B writes both, as a restarted shard finds them, and serves.
 * 4. B sends A its new state vector; A drops its copy only if that vector covers everything A
 *    holds. Until then A keeps it and asks again later: a lost step delays the move, never
 *    loses a write.
 */

/** What an old shard answers to a pull. */
export type HandOff =
  | { held: false; reason: "owner" | "empty" }
  | {
      held: true;
      /** The document beyond the puller's state vector (a Yjs update). */
      update: Uint8Array;
      presence: PresenceWrite;
    };

/** The rooms stored on shard `self` that `layout` gives to another shard. */
export function roomsToHandAway(
  stored: Iterable<string>,
  layout: ShardLayout,
  self: number,
): Array<{ room: string; owner: number }> {
  const out: Array<{ room: string; owner: number }> = [];
  for (const room of stored) {
    const owner = ownerIndex(room, layout);
    if (owner !== self) out.push({ room, owner });
  }
  return out;
}

/**
 * The shards the owner `self` pulls `room` from: its former owners under earlier counts, unless
 * it already pulled at this epoch (`arrivedEpoch`). Empty when it is not the owner.
 */
export function shardsToPull(
  room: string,
  layout: ShardLayout,
  self: number,
  arrivedEpoch: number,
): number[] {
  if (layout.epoch === 0 || arrivedEpoch >= layout.epoch) return [];
  if (ownerIndex(room, layout) !== self) return [];
  return formerOwners(room, layout).filter((index) => index !== self);
}

/** The stored document as one update (snapshot and log merged), or null when nothing is stored. */
export function storedDocument(stored: StoredRoom): Uint8Array | null {
  const parts = [...(stored.snapshot ? [stored.snapshot] : []), ...stored.log];
  if (parts.length === 0) return null;
  return parts.length === 1 ? (parts[0] as Uint8Array) : Y.mergeUpdates(parts);
}

/** The stored document's state vector (an empty document's when nothing is stored). */
export function storedStateVector(stored: StoredRoom): Uint8Array {
  const whole = storedDocument(stored);
  return whole ? Y.encodeStateVectorFromUpdate(whole) : EMPTY_STATE_VECTOR;
}

/** What a puller with `stateVector` lacks of the stored document (the whole of it without a vector). */
export function documentBeyond(stored: StoredRoom, stateVector?: Uint8Array): Uint8Array {
  const whole = storedDocument(stored);
  if (!whole) return EMPTY_UPDATE;
  return stateVector ? Y.diffUpdate(whole, stateVector) : whole;
}

/**
 * True when a holder of `stateVector` has every struct of the stored document. Deletions need
 * no check here: every hand-off carries the whole delete set, and a copy is only dropped after
 * the hand-off that made it obsolete was applied.
 */
export function storedCoveredBy(stored: StoredRoom, stateVector: Uint8Array): boolean {
  const whole = storedDocument(stored);
  if (!whole) return true;
  const held = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(whole));
  const theirs = Y.decodeStateVector(stateVector);
  for (const [client, clock] of held) if ((theirs.get(client) ?? 0) < clock) return false;
  return true;
}

/** True when an update adds something (Yjs encodes "nothing" as two zero varints). */
export function carriesContent(update: Uint8Array): boolean {
  return !(update.byteLength === 2 && update[0] === 0 && update[1] === 0);
}

const EMPTY_UPDATE = new Uint8Array([0, 0]);
const EMPTY_STATE_VECTOR = new Uint8Array([0]);
