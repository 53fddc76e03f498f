import type { Region } from "../config/regions";
import type { PresenceSource, RoomSummary } from "../core/room-replica";
import type { Member, PresenceEvent, PresenceSnapshot } from "../presence/presence-schema";
import type { HistoryQuery } from "../presence/presence-store";
import type { RebalanceReport } from "../rebalance/handoff-schema";
import type { ShardAddress } from "../routing/shard-router";
import type { PersistenceStats } from "../storage/room-persistence";

/** The shard's RPC surface as the Worker uses it (the generated stub type is too deep for the compiler). */
export interface ShardStub {
  fetch(request: Request): Promise<Response>;
  // `epoch`: the shard layout the caller routed by (a shard on an older one reads it again).
  summary(room: string, epoch?: number): Promise<RoomSummary>;
  presence(room: string, epoch?: number): Promise<PresenceSnapshot>;
  members(room: string, epoch?: number): Promise<Member[]>;
  presenceHistory(
    room: string,
    query: HistoryQuery,
    epoch?: number,
  ): Promise<{ version: number; events: PresenceEvent[] }>;
  document(
    room: string,
    since: Uint8Array | null,
    epoch?: number,
  ): Promise<Uint8Array<ArrayBuffer>>;
  stats(): Promise<{ loadedRooms: number; sockets: number }>;
  /** `stats()` and the shard's busiest rooms (by client frames a second, and by sockets). */
  busiest(): Promise<{
    loadedRooms: number;
    sockets: number;
    busiestRooms: Array<{ room: string; connections: number; messagesPerSecond: number }>;
  }>;
  presenceView(
    room: string,
    epoch?: number,
  ): Promise<{ snapshot: PresenceSnapshot; sources: PresenceSource[]; at: number }>;
  localMembers(room: string, epoch?: number): Promise<Member[]>;
  presenceAll(
    room: string,
    regions: Region[],
    epoch?: number,
  ): Promise<{
    local: { snapshot: PresenceSnapshot; sources: PresenceSource[]; at: number };
    answers: Array<{ region: Region; members: Member[] | null }>;
  }>;
  /** A replica message from a peer region's shard; returns the answers for it. */
  replicate(region: Region, index: number, message: unknown, epoch?: number): Promise<unknown[]>;
  storageStats(room: string, epoch?: number): Promise<PersistenceStats>;
  // Moving rooms between the shards of a region (src/rebalance). Each names the callee's
  // region and index: a Durable Object does not know its own name.
  /** A new owner's pull: the room's state beyond `stateVector` (checked with `handOffSchema`). */
  handOff(
    region: Region,
    index: number,
    room: string,
    epoch: number,
    stateVector: Uint8Array,
  ): Promise<unknown>;
  /** The new owner holds everything up to `stateVector`: the old copy may go. */
  release(region: Region, index: number, room: string, stateVector: Uint8Array): Promise<boolean>;
  /** A former owner (`from`) asks the owner to take the room now. */
  adopt(region: Region, index: number, room: string, from: number): Promise<boolean>;
  /** Hands away every room another shard now owns; closes a drained region's sockets. */
  rebalance(region: Region, index: number): Promise<RebalanceReport>;
}

export function shardStub(namespace: Env["SHARD"], shard: ShardAddress): ShardStub {
  // The location hint only matters the first time the object is created; it places the shard in its region.
  const stub = namespace.get(namespace.idFromName(shard.name), {
    locationHint: shard.region as DurableObjectLocationHint,
  });
  return stub as unknown as ShardStub;
}
