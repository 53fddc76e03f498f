import type { Region } from "../config/regions";
import type { PresenceSource, RoomSummary } from "../core/room-replica";
import type { Member, PresenceEvent, PresenceSnapshot } from "../presence/presence-schema";
import type { HistoryQuery } from "../presence/presence-store";
import type { ShardAddress } from "../routing/shard-router";
import type { PersistenceStats } from "../storage/room-persistence";

/** The shard's RPC surface as the Worker uses it (the generated stub type is too deep for the compiler). */
export interface ShardStub {
  fetch(request: Request): Promise<Response>;
  summary(room: string): Promise<RoomSummary>;
  presence(room: string): Promise<PresenceSnapshot>;
  members(room: string): Promise<Member[]>;
  presenceHistory(
    room: string,
    query: HistoryQuery,
  ): Promise<{ version: number; events: PresenceEvent[] }>;
  document(room: string, since: Uint8Array | null): Promise<Uint8Array<ArrayBuffer>>;
  stats(): Promise<{ loadedRooms: number; sockets: number }>;
  presenceView(
    room: string,
  ): Promise<{ snapshot: PresenceSnapshot; sources: PresenceSource[]; at: number }>;
  localMembers(room: string): Promise<Member[]>;
  presenceAll(
    room: string,
    regions: Region[],
  ): Promise<{
    local: { snapshot: PresenceSnapshot; sources: PresenceSource[]; at: number };
    answers: Array<{ region: Region; members: Member[] | null }>;
  }>;
  /** A replica message from a peer region's shard; returns the answers for it. */
  replicate(region: Region, index: number, message: unknown): Promise<unknown[]>;
  storageStats(room: string): Promise<PersistenceStats>;
}

export function shardStub(namespace: Env["SHARD"], shard: ShardAddress): ShardStub {
  // The location hint only matters the first time the object is created; it places the shard in its region.
  const stub = namespace.get(namespace.idFromName(shard.name), {
    locationHint: shard.region as DurableObjectLocationHint,
  });
  return stub as unknown as ShardStub;
}
