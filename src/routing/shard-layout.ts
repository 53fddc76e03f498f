import type { HaloConfig } from "../config/config-schema";
import type { Region } from "../config/regions";
import { shardIndexFor } from "./jump-hash";

/**
 * How a region's rooms map onto its shards at one epoch: the operator's count (from the
 * region's membership entry, or configuration before any resize) and the counts before it.
 * A room lives on `jump(hash(room), count)`; after a resize it may still sit on the shard an
 * earlier count gave it until that shard hands it over (DESIGN.md, "Routing").
 */
export interface ShardLayout {
  count: number;
  epoch: number;
  /** Earlier counts, newest first. */
  previous: readonly number[];
}

/** A region's layout as a table holds it, or undefined where the table does not know the region. */
export type LayoutLookup = (region: Region) => ShardLayout | undefined;

/** The table's layout for `region`, or configuration's count at epoch 0. */
export function layoutFor(region: Region, config: HaloConfig, lookup?: LayoutLookup): ShardLayout {
  return lookup?.(region) ?? { count: config.shardCount(region), epoch: 0, previous: [] };
}

/** The shard index that owns `room` under `layout`. */
export function ownerIndex(room: string, layout: ShardLayout): number {
  return shardIndexFor(room, layout.count);
}

/**
 * The shards that may still hold `room` from an earlier count, nearest count first, without
 * the current owner: a new owner pulls from these, and only these can hold a stale copy.
 */
export function formerOwners(room: string, layout: ShardLayout): number[] {
  const owner = ownerIndex(room, layout);
  const found: number[] = [];
  for (const count of layout.previous) {
    const index = shardIndexFor(room, count);
    if (index !== owner && !found.includes(index)) found.push(index);
  }
  return found;
}

/**
 * Layouts from a membership table's entries: the Worker and the shards route by the epoch the
 * table holds (the region's own directory writes it; others hear it by gossip).
 */
export function layoutsFromEntries(
  entries: ReadonlyArray<{
    region: Region;
    shards: number;
    shardEpoch: number;
    previousShards: number[];
  }>,
): LayoutLookup {
  const byRegion = new Map<Region, ShardLayout>(
    entries.map((entry) => [
      entry.region,
      { count: entry.shards, epoch: entry.shardEpoch, previous: entry.previousShards },
    ]),
  );
  return (region) => byRegion.get(region);
}
