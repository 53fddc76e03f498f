import * as Y from "yjs";
import type { RoomEffect, RoomReplica } from "../core/room-replica";
import type { Addressed, OutrankedRecord, ReplicaMessage, SyncMessage } from "./replica-messages";
import type { RoomLink } from "./room-link";

/**
 * Glue between one room's replica core, its link and the messages between regions: what to do
 * with a message that arrived, and what to send when time passes. The shard shell and the
 * simulator both run exactly this, so the simulator proves what the shell does.
 */

/** Whether `region` may serve (not dead or drained): members of others are not accepted. */
export type RegionFilter = (region: string) => boolean;

export interface Received {
  /** For the room's local connections. */
  effects: RoomEffect[];
  /** Answers for the sender (and, in the leave handshake, for the home). */
  replies: Addressed[];
}

export function receiveReplicaMessage(
  room: RoomReplica,
  link: RoomLink,
  message: ReplicaMessage,
  nowMs: number,
  serves: RegionFilter,
): Received {
  const from = message.from;
  const accept = serves(from);
  if (message.type === "batch") {
    if (accept) link.heardFrom(from, nowMs);
    const effects = room.applyPeerBatch(from, message, nowMs, accept);
    link.noteMemberRegions(room.memberRegions(), nowMs);
    // An update that waits for one it builds on means a batch was lost or overtaken: ask the
    // sender for anti-entropy now (rate-limited) instead of at the next period.
    const replies: Addressed[] =
      room.waitingPeerUpdates > 0 && link.repairGap(from, nowMs)
        ? [{ to: from, message: syncMessage(room, link, nowMs, { reply: true }) }]
        : [];
    return { effects, replies };
  }
  if (accept) link.heardFrom(from, nowMs, message.leaving === true);
  // Only the home's list is the directory: lists passed around would keep departed peers alive.
  if (message.peers && from === link.home && !message.leaving)
    link.learnPeers(message.peers.filter(serves), nowMs);
  const { effects, diff, outranked } = room.applyPeerSync(from, message, nowMs, accept);
  const replies: Addressed[] = [];
  // A diff without structs carries only the delete set: not worth sending when the sender's
  // deletions are known to be the same.
  const sameDeletions = message.deleteSetDigest === room.deleteSetDigest();
  if (diff !== null && carriesContent(diff) && !(sameDeletions && !hasStructs(diff))) {
    replies.push({
      to: from,
      message: { type: "batch", room: room.name, from: link.region, update: diff, members: [] },
    });
  }
  if (message.reply) {
    replies.push({
      to: from,
      message: syncMessage(room, link, nowMs, { reply: false, outranked }),
    });
  }
  const covered = room.coveredBy(message.stateVector);
  const actions = link.onSync(from, message.stateVector, message.peers, covered);
  if (actions.leave) {
    const { home, homeVector } = actions.leave;
    replies.push({
      to: home,
      message: syncMessage(room, link, nowMs, {
        reply: true,
        leaving: true,
        update: room.encodeDocument(homeVector),
      }),
    });
  }
  link.noteMemberRegions(room.memberRegions(), nowMs);
  return { effects, replies };
}

/**
 * Time passed: the batch whose window ended goes to every target, and anti-entropy that is due
 * goes out. `forceBatch` sends a waiting batch at once (batch window 0, or the room unloads).
 */
export function tickReplica(
  room: RoomReplica,
  link: RoomLink,
  nowMs: number,
  forceBatch = false,
): Addressed[] {
  const out: Addressed[] = [];
  const batch = room.takeBatch(nowMs, forceBatch);
  // Records of this region's own members: anti-entropy must run until they are delivered.
  if (batch && batch.members.length > 0) link.noteLocalChanges(nowMs);
  const targets = link.targets(nowMs);
  if (batch && (batch.update || batch.members.length > 0)) {
    for (const to of targets) {
      out.push({
        to,
        message: { type: "batch", room: room.name, from: link.region, ...batch },
      });
    }
  }
  link.noteMemberRegions(room.memberRegions(), nowMs);
  for (const to of link.tick(nowMs).syncWith) {
    out.push({ to, message: syncMessage(room, link, nowMs, { reply: true }) });
  }
  // (Again: a link that went dormant keeps a timer if it holds other regions' members.)
  link.noteMemberRegions(room.memberRegions(), nowMs);
  return out;
}

/** When the room next needs `tickReplica` (Unix ms), or null. */
export function nextReplicaTick(room: RoomReplica, link: RoomLink): number | null {
  const batch = room.batchDueAt;
  const sync = link.nextTickAt;
  if (batch === null) return sync;
  return sync === null ? batch : Math.min(batch, sync);
}

function syncMessage(
  room: RoomReplica,
  link: RoomLink,
  nowMs: number,
  options: {
    reply: boolean;
    leaving?: boolean;
    update?: Uint8Array;
    outranked?: OutrankedRecord[];
  },
): SyncMessage {
  const state = room.syncState();
  return {
    type: "sync",
    room: room.name,
    from: link.region,
    stateVector: state.stateVector,
    members: state.members,
    asOf: state.asOf,
    reply: options.reply,
    peers: link.replicaSet(nowMs),
    deleteSetDigest: room.deleteSetDigest(),
    ...(options.leaving ? { leaving: true } : {}),
    ...(options.update && carriesContent(options.update) ? { update: options.update } : {}),
    ...(options.outranked?.length ? { outranked: options.outranked } : {}),
  };
}

function hasStructs(update: Uint8Array): boolean {
  try {
    return Y.decodeUpdate(update).structs.length > 0;
  } catch {
    return true;
  }
}

/** An update with no structs and an empty delete set changes nothing: not worth a message. */
function carriesContent(update: Uint8Array): boolean {
  // Yjs encodes "nothing" as two zero varints (no struct clients, no delete-set clients).
  return !(update.byteLength === 2 && update[0] === 0 && update[1] === 0);
}
