/** A sustained rate with room for bursts: `perSecond` tokens refill continuously, up to `burst`. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/**
 * The classic token bucket. Time is passed in (Unix ms), so the room core and the simulator
 * drive it deterministically; a clock that goes backwards refills nothing.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAtMs: number;

  constructor(
    private readonly limit: RateLimit,
    nowMs: number,
  ) {
    this.tokens = limit.burst;
    this.updatedAtMs = nowMs;
  }

  /** Takes `cost` tokens if the bucket holds them; false means the caller is over its rate. */
  take(nowMs: number, cost = 1): boolean {
    this.refill(nowMs);
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }

  /** Milliseconds until `cost` tokens are back (0 when they already are): the `Retry-After` basis. */
  waitMs(nowMs: number, cost = 1): number {
    this.refill(nowMs);
    const missing = cost - this.tokens;
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.limit.perSecond);
  }

  private refill(nowMs: number): void {
    const elapsedMs = nowMs - this.updatedAtMs;
    if (elapsedMs <= 0) return;
    this.tokens = Math.min(
      this.limit.burst,
      this.tokens + (elapsedMs * this.limit.perSecond) / 1000,
    );
    this.updatedAtMs = nowMs;
  }
}
