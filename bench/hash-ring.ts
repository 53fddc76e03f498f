/**
 * Classic consistent-hash ring with virtual nodes (Karger et al.; the
 * "ketama" layout used by memcached clients), kept here only as a benchmark
 * baseline for jump hash. Each shard owns `vnodes` points on a 32-bit circle;
 * a key belongs to the first point clockwise from its hash.
 */

import { hash32 } from "../src/routing/hash";

/** Seed for point labels, distinct from the key hash seed so points and keys are unrelated. */
const POINT_SEED = 0x6b657461;
/** Shard ids are packed below the point in one double for a single numeric sort. */
const SHARD_BITS = 2 ** 21;

export class HashRing {
  readonly shards: number;
  readonly vnodesPerShard: number;
  /** Sorted point positions; `owners[i]` is the shard owning `points[i]`. */
  private readonly points: Uint32Array;
  private readonly owners: Uint32Array;

  constructor(shards: number, vnodesPerShard: number) {
    if (!Number.isInteger(shards) || shards < 1 || shards >= SHARD_BITS) {
      throw new RangeError(`shards must be an integer in [1, ${SHARD_BITS - 1}]`);
    }
    if (!Number.isInteger(vnodesPerShard) || vnodesPerShard < 1) {
      throw new RangeError("vnodesPerShard must be a positive integer");
    }
    this.shards = shards;
    this.vnodesPerShard = vnodesPerShard;
    const total = shards * vnodesPerShard;
    // point * 2^21 + shard < 2^53, so one typed-array sort orders by point and
    // breaks (rare) point collisions by shard id, deterministically.
    const packed = new Float64Array(total);
    let p = 0;
    for (let s = 0; s < shards; s++) {
      for (let v = 0; v < vnodesPerShard; v++) {
        packed[p++] = hash32(`shard-${s}#${v}`, POINT_SEED) * SHARD_BITS + s;
      }
    }
    packed.sort();
    this.points = new Uint32Array(total);
    this.owners = new Uint32Array(total);
    for (let i = 0; i < total; i++) {
      const x = packed[i]!;
      const point = Math.floor(x / SHARD_BITS);
      this.points[i] = point;
      this.owners[i] = x - point * SHARD_BITS;
    }
  }

  /** Number of points on the ring. */
  get size(): number {
    return this.points.length;
  }

  /** Shard owning a precomputed 32-bit key hash. */
  lookupHash(h: number): number {
    const points = this.points;
    const n = points.length;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    // Past the last point wraps around to the first.
    return this.owners[lo === n ? 0 : lo]!;
  }

  /** Shard for a key string (hash32 with seed 0, as the `hash % N` baseline uses). */
  lookup(key: string): number {
    return this.lookupHash(hash32(key));
  }
}
