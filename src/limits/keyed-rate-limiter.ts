import { type RateLimit, TokenBucket } from "./token-bucket";

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * One token bucket per client key, for the REST endpoints. The map is bounded: at `maxKeys`
 * the least recently used bucket is dropped (most likely long refilled, so forgetting it
 * changes nothing), so a flood of distinct keys costs bounded memory and O(1) per request.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly maxKeys: number,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  take(key: string, nowMs: number): RateDecision {
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key); // re-inserted below: Map order is recency order
    } else {
      this.makeRoom();
      bucket = new TokenBucket(this.limit, nowMs);
    }
    this.buckets.set(key, bucket);
    return bucket.take(nowMs)
      ? { allowed: true }
      : { allowed: false, retryAfterMs: bucket.waitMs(nowMs) };
  }

  private makeRoom(): void {
    while (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest === undefined) break;
      this.buckets.delete(oldest);
    }
  }
}
