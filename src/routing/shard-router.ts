import type { HaloConfig } from "../config/config-schema";
import type { Region } from "../config/regions";
import { type LayoutLookup, layoutFor, ownerIndex } from "./shard-layout";

export interface ShardAddress {
  region: Region;
  index: number;
  /** The Durable Object name, `shard:{region}:{index}`. */
  name: string;
}

/**
 * The shard that serves `room` in `region`: jump hash of the room over the region's shard
 * count, as the membership table holds it (`layouts`), or configuration's before any resize.
 */
export function shardFor(
  room: string,
  region: Region,
  config: HaloConfig,
  layouts?: LayoutLookup,
): ShardAddress {
  return shardAt(region, ownerIndex(room, layoutFor(region, config, layouts)));
}

export function shardAt(region: Region, index: number): ShardAddress {
  return { region, index, name: `shard:${region}:${index}` };
}

/**
 * Every shard of every configured region, region by region: the current count's, and any
 * beyond it that an earlier, larger count used (they may still hold rooms being moved).
 */
export function allShards(config: HaloConfig, layouts?: LayoutLookup): ShardAddress[] {
  return config.regions.flatMap((region) => shardsOf(region, config, layouts));
}

/** Every shard of one region, as `allShards` counts them. */
export function shardsOf(
  region: Region,
  config: HaloConfig,
  layouts?: LayoutLookup,
): ShardAddress[] {
  const layout = layoutFor(region, config, layouts);
  const count = Math.max(layout.count, ...layout.previous);
  return Array.from({ length: count }, (_, index) => shardAt(region, index));
}
