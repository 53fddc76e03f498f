import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config-schema";
import { LimitExceeded } from "../../src/http/errors";
import { restClientKey, spendRestRequest } from "../../src/http/rest-rate-limit";
import { KeyedRateLimiter } from "../../src/limits/keyed-rate-limiter";
import { TokenBucket } from "../../src/limits/token-bucket";

describe("TokenBucket", () => {
  it("starts full, allows a burst, then refills continuously up to the burst", () => {
    const bucket = new TokenBucket({ perSecond: 4, burst: 3 }, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(bucket.waitMs(0)).toBe(250);
    expect(bucket.take(249)).toBe(false);
    expect(bucket.take(250)).toBe(true);
    // A long pause refills to the burst, never beyond it.
    expect(bucket.waitMs(60_000)).toBe(0);
    const taken = Array.from({ length: 5 }, () => bucket.take(60_000));
    expect(taken).toEqual([true, true, true, false, false]);
  });

  it("refills nothing when the clock goes backwards", () => {
    const bucket = new TokenBucket({ perSecond: 1000, burst: 1 }, 10_000);
    expect(bucket.take(10_000)).toBe(true);
    expect(bucket.take(5_000)).toBe(false);
    expect(bucket.take(10_001)).toBe(true);
  });

  it("takes a cost larger than one token at once, or nothing", () => {
    const bucket = new TokenBucket({ perSecond: 1, burst: 5 }, 0);
    expect(bucket.take(0, 4)).toBe(true);
    expect(bucket.take(0, 2)).toBe(false);
    expect(bucket.take(0, 1)).toBe(true);
    expect(bucket.waitMs(0, 2)).toBe(2000);
  });
});

describe("KeyedRateLimiter", () => {
  it("keeps one budget per key", () => {
    const limiter = new KeyedRateLimiter({ perSecond: 1, burst: 2 }, 100);
    expect(limiter.take("a", 0).allowed).toBe(true);
    expect(limiter.take("a", 0).allowed).toBe(true);
    expect(limiter.take("a", 0)).toEqual({ allowed: false, retryAfterMs: 1000 });
    expect(limiter.take("b", 0).allowed).toBe(true);
  });

  it("tracks at most maxKeys keys, forgetting the least recently used", () => {
    const limiter = new KeyedRateLimiter({ perSecond: 1, burst: 1 }, 3);
    for (const key of ["a", "b", "c"]) expect(limiter.take(key, 0).allowed).toBe(true);
    expect(limiter.take("a", 0).allowed).toBe(false); // "a" is now the most recent
    expect(limiter.take("d", 0).allowed).toBe(true); // evicts "b"
    expect(limiter.size).toBe(3);
    expect(limiter.take("a", 0).allowed).toBe(false); // kept: still spent
    expect(limiter.take("c", 0).allowed).toBe(false); // kept
    expect(limiter.take("b", 0).allowed).toBe(true); // forgotten, so a fresh budget
    expect(limiter.size).toBe(3);
  });
});

describe("REST rate limit", () => {
  const limits = parseConfig({
    shards: { wnam: 1 },
    limits: { restRequestsPerSecond: 2, restBurst: 1 },
  }).limits;

  it("keys a token holder by userId and an anonymous caller by IP, whatever ?user= says", () => {
    const tokenHolder = { userId: "ada", rights: [], expiresAt: 1_900_000_000_000 };
    const anonymous = { userId: "ada", rights: [], expiresAt: null };
    expect(restClientKey(tokenHolder, "203.0.113.9")).toBe("user:ada");
    expect(restClientKey(anonymous, "203.0.113.9")).toBe("ip:203.0.113.9");
    expect(restClientKey(anonymous, undefined)).toBe("ip:unknown");
  });

  it("throws 429 naming the limit, with Retry-After in whole seconds", () => {
    const limiter = new KeyedRateLimiter({ perSecond: 2, burst: 1 }, 100);
    spendRestRequest(limiter, "user:ada", 0, limits);
    let error: unknown;
    try {
      spendRestRequest(limiter, "user:ada", 0, limits);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(LimitExceeded);
    const refused = error as LimitExceeded;
    expect(refused.status).toBe(429);
    expect(refused.headers).toEqual({ "Retry-After": "1" });
    expect(refused.toBody()).toEqual({
      error: {
        code: "rate_limited",
        message:
          "over 2 requests/s (limits.restRequestsPerSecond) with a burst of 1 (limits.restBurst); retry after 1 s",
        limit: { name: "restRequestsPerSecond", value: 2 },
      },
    });
    expect(() => spendRestRequest(limiter, "user:ada", 500, limits)).not.toThrow();
  });
});
