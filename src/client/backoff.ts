/** How a client waits between reconnect attempts. */
export interface BackoffSettings {
  /** The first wait's ceiling (ms). */
  initialMs: number;
  /** No wait is longer than this (ms). */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = { initialMs: 250, maxMs: 30_000 };

/**
 * The wait before reconnect attempt `attempt` (0 for the first): exponential with full jitter,
 * a uniform draw up to `initialMs × 2^attempt` (capped at `maxMs`). The jitter spreads clients
 * that lost one region at the same moment, so they do not all come back in the same
 * millisecond. `random` is a draw in [0, 1), passed in.
 */
export function backoffDelay(attempt: number, random: number, settings = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(settings.maxMs, settings.initialMs * 2 ** Math.max(0, attempt));
  return Math.floor(random * ceiling);
}
