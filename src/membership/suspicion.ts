/**
 * Lifeguard's false-positive guards (Dadgar et al., "Lifeguard: Local Health Awareness for More
 * Accurate Failure Detection", 2018; hashicorp/memberlist), as pure functions.
 */

/**
 * How long a suspicion waits before it is confirmed as a death. It starts at `maxMs` and falls
 * logarithmically towards `minMs` as independent reports arrive, reaching it at `expected`
 * confirmations: one region's doubt waits long, many regions' shared doubt acts fast. With no
 * one else able to confirm (`expected` < 1), waiting longer gains nothing, so `minMs`.
 */
export function suspicionTimeoutMs(
  confirmations: number,
  expected: number,
  minMs: number,
  maxMs: number,
): number {
  if (expected < 1) return minMs;
  const fraction = Math.log(Math.min(confirmations, expected) + 1) / Math.log(expected + 1);
  return Math.max(minMs, Math.floor(maxMs - (maxMs - minMs) * fraction));
}

/**
 * Scales timeouts with the table's size, as memberlist does (log10 of the member count, at
 * least 1): gossip needs about log(N) rounds to reach everyone, so a heartbeat's age at the far
 * side grows with N.
 */
export function sizeScale(members: number): number {
  return Math.max(1, Math.log10(Math.max(1, members)));
}

/**
 * Local health (Lifeguard's "local health multiplier"): a region whose own gossip goes
 * unanswered is more likely the one that is slow or cut off, so it stretches its own timeouts
 * by (1 + score) before accusing others. Missed acks and refuting a suspicion of itself raise
 * the score; answered exchanges lower it.
 */
export class LocalHealth {
  #score = 0;

  constructor(private readonly max: number) {}

  get score(): number {
    return this.#score;
  }

  get multiplier(): number {
    return 1 + this.#score;
  }

  worse(): void {
    this.#score = Math.min(this.max, this.#score + 1);
  }

  better(): void {
    this.#score = Math.max(0, this.#score - 1);
  }
}
