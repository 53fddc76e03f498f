import type { Region } from "../config/regions";
import type { FaultPlan } from "../membership/fault-plan";
import type { GossipMessage, MembershipView } from "../membership/membership-node";
import type { HotShard, RegionEntry, ShardLoadReport } from "../membership/region-entry";

/** The directory's RPC surface (the generated stub type is too deep for the compiler). Every call names the directory's region. */
export interface DirectoryStub {
  view(region: Region): Promise<MembershipView>;
  gossip(region: Region, message: GossipMessage): Promise<GossipMessage[]>;
  drain(region: Region): Promise<RegionEntry>;
  undrain(region: Region): Promise<RegionEntry>;
  setFaults(region: Region, plan: FaultPlan): Promise<FaultPlan>;
  getFaults(region: Region): Promise<FaultPlan>;
  reportLoad(region: Region, shard: number, load: ShardLoadReport): Promise<void>;
  shardLoads(region: Region): Promise<HotShard[]>;
  resize(region: Region, shards: number): Promise<RegionEntry>;
}

export function directoryStub(namespace: Env["DIRECTORY"], region: Region): DirectoryStub {
  // The location hint places the directory in its region the first time it is created.
  const stub = namespace.get(namespace.idFromName(`directory:${region}`), {
    locationHint: region as DurableObjectLocationHint,
  });
  return stub as unknown as DirectoryStub;
}
