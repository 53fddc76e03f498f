import type { HaloConfig } from "../config/config-schema";
import type { Region } from "../config/regions";
import { shardIndexFor } from "./jump-hash";

export interface ShardAddress {
  region: Region;
  index: number;
  /** The Durable Object name, `shard:{region}:{index}`. */
  name: string;
}

/** The shard that serves `room` in `region`: jump hash of the room over the region's shard count. */
export function shardFor(room: string, region: Region, config: HaloConfig): ShardAddress {
  const index = shardIndexFor(room, config.shardCount(region));
  return { region, index, name: `shard:${region}:${index}` };
}
