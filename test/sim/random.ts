import { splitmix32 } from "../../bench/prng";

/**
 * The simulator's only source of randomness: seeded, so a run replays exactly from its seed.
 * Each consumer forks its own stream, so adding a draw in one place does not shift the others.
 */
export class SimRandom {
  readonly #next: () => number;

  constructor(readonly seed: number) {
    this.#next = splitmix32(seed);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.#next() / 0x100000000;
  }

  chance(probability: number): boolean {
    return probability > 0 && this.next() < probability;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Uniform in [low, high). */
  between(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[this.int(items.length)] as T;
  }

  /** An independent stream derived from this one's seed and a label. */
  fork(label: string): SimRandom {
    let h = this.seed ^ 0x811c9dc5;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
    return new SimRandom(h >>> 0);
  }
}
