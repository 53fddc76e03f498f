/**
 * Jump consistent hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent
 * Hash Algorithm", 2014): maps a 64-bit key to a bucket in [0, buckets) with
 * no state, a perfectly even expected spread, and the minimal-movement
 * property — growing from n to n+1 buckets moves a key only into bucket n.
 *
 * Buckets are numbered, not named, so it fits shard indexes (which only ever
 * grow at the end), not arbitrary node sets; use rendezvous hashing for those.
 */

import { hash64 } from "./hash";

/** Largest bucket count: the reference takes an int32, and this keeps j exact in a double. */
export const MAX_BUCKETS = 0x7fffffff;

// The LCG multiplier 2862933555777941757 = 0x27BB2EE6_87B0B0FD, split for
// 32-bit arithmetic; the low word is further split into 16-bit limbs so that
// every partial product is below 2^32 and exact in a double.
const M_HI = 0x27bb2ee6;
const M_LO = 0x87b0b0fd;
const M_LO_L = M_LO & 0xffff;
const M_LO_H = M_LO >>> 16;

function checkBuckets(buckets: number): void {
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > MAX_BUCKETS) {
    throw new RangeError(`buckets must be an integer in [1, ${MAX_BUCKETS}], got ${buckets}`);
  }
}

/**
 * Bucket for a 64-bit key given as two 32-bit halves (`hi` is the upper word).
 * Halves are taken modulo 2^32. Bit-for-bit identical to the published C++
 * reference, including its double-precision step.
 */
export function jumpHash(key: { hi: number; lo: number }, buckets: number): number {
  checkBuckets(buckets);
  // BigInt would be simpler but allocates per step; this stays in SMIs/doubles.
  let hi = key.hi >>> 0;
  let lo = key.lo >>> 0;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    // key = key * M + 1 (mod 2^64). The low 64 bits of the product are
    // lo*M_LO (full 64 bits) + ((hi*M_LO + lo*M_HI) mod 2^32) << 32.
    const a0 = lo & 0xffff;
    const a1 = lo >>> 16;
    const p00 = a0 * M_LO_L;
    const p01 = a0 * M_LO_H;
    const p10 = a1 * M_LO_L;
    const p11 = a1 * M_LO_H;
    const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    const prodLo = ((mid << 16) | (p00 & 0xffff)) >>> 0;
    const prodLoHigh = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
    let nextHi = prodLoHigh + Math.imul(hi, M_LO) + Math.imul(lo, M_HI);
    let nextLo = prodLo + 1;
    if (nextLo === 0x100000000) {
      nextLo = 0;
      nextHi += 1;
    }
    hi = nextHi >>> 0;
    lo = nextLo;
    // key >> 33 is hi >>> 1; same double arithmetic as the reference, so
    // results agree exactly (floor == C's truncation for positive values).
    j = Math.floor((b + 1) * (2147483648 / ((hi >>> 1) + 1)));
  }
  return b;
}

/**
 * Straightforward BigInt transcription of the reference, used to check
 * {@link jumpHash}. Keys are taken modulo 2^64. Slow: not for hot paths.
 */
export function jumpHashBigInt(key: bigint, buckets: number): number {
  checkBuckets(buckets);
  let k = BigInt.asUintN(64, key);
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = BigInt.asUintN(64, k * 2862933555777941757n + 1n);
    j = Math.floor((b + 1) * (2 ** 31 / (Number(k >> 33n) + 1)));
  }
  return b;
}

/** Shard index in [0, shardCount) for a room name. */
export function shardIndexFor(room: string, shardCount: number): number {
  return jumpHash(hash64(room), shardCount);
}
