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
  return shardAt(region, shardIndexFor(room, config.shardCount(region)));
}

export function shardAt(region: Region, index: number): ShardAddress {
  return { region, index, name: `shard:${region}:${index}` };
}

/** Every configured shard, region by region. */
export function allShards(config: HaloConfig): ShardAddress[] {
  return config.regions.flatMap((region) =>
    Array.from({ length: config.shardCount(region) }, (_, index) => shardAt(region, index)),
  );
}
