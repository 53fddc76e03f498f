/**
 * Small seeded PRNGs for benchmarks: inputs must be identical across runs and
 * machines so results are comparable, which Math.random cannot give.
 */

/**
 * splitmix32: a Weyl sequence (golden-ratio increment) pushed through the
 * MurmurHash3 finaliser. Period 2^32, passes the usual smoke tests, and is a
 * handful of integer ops per draw. Returns a function yielding uint32 values.
 */
export function splitmix32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Uniform float in [0, 1) with 32 bits of randomness. */
export function uniform(next: () => number): number {
  return next() / 0x100000000;
}

/**
 * Deterministic room names shaped like real ones: `room-<n>-<random base36>`.
 * The counter guarantees uniqueness; the random suffix (6–7 chars) varies the
 * length and byte content the way user-chosen ids do.
 */
export function makeRoomNames(count: number, seed = 0x5eed): string[] {
  const next = splitmix32(seed);
  const names: string[] = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    names[i] = `room-${i}-${next().toString(36)}`;
  }
  return names;
}
