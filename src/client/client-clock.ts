/**
 * Time, timers and randomness as the SDK uses them, passed in so tests can run a connection's
 * whole lifecycle (backoff, liveness, token refresh) without waiting on real time.
 */
export interface ClientClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** A draw in [0, 1). */
  random(): number;
}

export const systemClock: ClientClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
  random: () => Math.random(),
};
