import type { ConnectionIdentity } from "../auth/authenticate";
import type { Limits } from "../config/config-schema";
import { KeyedRateLimiter } from "../limits/keyed-rate-limiter";
import { LimitExceeded } from "./errors";

const limiters = new WeakMap<object, KeyedRateLimiter>();

/**
 * The REST rate limiter of this isolate (one per `env`, which lives as long as the isolate).
 * Counts are per isolate: a front line against one hot client at one location, not a global
 * quota (see docs/SECURITY.md).
 */
export function restLimiterFor(env: object, limits: Limits): KeyedRateLimiter {
  let limiter = limiters.get(env);
  if (!limiter) {
    limiter = new KeyedRateLimiter(
      { perSecond: limits.restRequestsPerSecond, burst: limits.restBurst },
      limits.maxTrackedRestClients,
    );
    limiters.set(env, limiter);
  }
  return limiter;
}

/**
 * Whose budget a request spends: a token holder's userId, which the token proves; without a
 * token, the caller's IP, because an anonymous `?user=` is whatever the caller says it is.
 */
export function restClientKey(identity: ConnectionIdentity, ip: string | undefined): string {
  const fromToken = identity.expiresAt !== null; // every token carries `exp`; anonymous access has none
  return fromToken ? `user:${identity.userId}` : `ip:${ip ?? "unknown"}`;
}

/** Spends one request from `key`'s budget, or throws 429 naming the limit, with `Retry-After`. */
export function spendRestRequest(
  limiter: KeyedRateLimiter,
  key: string,
  nowMs: number,
  limits: Limits,
): void {
  const decision = limiter.take(key, nowMs);
  if (decision.allowed) return;
  const retryAfterSeconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
  throw new LimitExceeded(
    429,
    "rate_limited",
    `over ${limits.restRequestsPerSecond} requests/s (limits.restRequestsPerSecond) with a burst of ${limits.restBurst} (limits.restBurst); retry after ${retryAfterSeconds} s`,
    { name: "restRequestsPerSecond", value: limits.restRequestsPerSecond },
    { "Retry-After": String(retryAfterSeconds) },
  );
}
