import type { RttMatrix } from "./latency";
import type { SimRandom } from "./random";
import type { Scheduler } from "./scheduler";

/** Faults applied to every message: each independently lost, duplicated, or delayed by extra jitter (which reorders). */
export interface LinkFaults {
  /** Probability a message is dropped. */
  loss: number;
  /** Probability a message is delivered twice (the copy with its own delay). */
  duplicate: number;
  /** Extra delay, uniform in [0, jitter x one-way latency]: messages overtake each other. */
  jitter: number;
}

export const NO_FAULTS: LinkFaults = { loss: 0, duplicate: 0, jitter: 0 };

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  /** JSON bytes of every message sent (a stand-in for the RPC payload's size). */
  bytes: number;
}

/**
 * Messages between regions on virtual time: one-way latency is half the RTT, plus jitter, plus
 * the extra delay of a slow endpoint; partitions cut pairs both ways, checked when a message
 * arrives (a message in flight when a partition starts is lost with it).
 */
export class SimNetwork {
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, bytes: 0 };
  readonly #cuts = new Set<string>();
  readonly #slow = new Map<string, number>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly random: SimRandom,
    private readonly rtt: RttMatrix,
    public faults: LinkFaults = NO_FAULTS,
  ) {}

  /** Cuts every link between two groups. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a) for (const y of b) this.#cuts.add(pair(x, y));
  }

  heal(): void {
    this.#cuts.clear();
  }

  isCut(a: string, b: string): boolean {
    return this.#cuts.has(pair(a, b));
  }

  /** Every message to or from `region` takes `extraMs` longer each way. */
  slow(region: string, extraMs: number): void {
    this.#slow.set(region, extraMs);
  }

  send(from: string, to: string, payload: unknown, deliver: () => void): void {
    this.stats.sent++;
    this.stats.bytes += JSON.stringify(payload).length;
    if (this.random.chance(this.faults.loss)) {
      this.stats.dropped++;
      return;
    }
    const copies = this.random.chance(this.faults.duplicate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const oneWay = this.rtt(from, to) / 2;
      const delay =
        oneWay +
        this.random.between(0, this.faults.jitter * oneWay) +
        (this.#slow.get(from) ?? 0) +
        (this.#slow.get(to) ?? 0);
      this.scheduler.after(delay, () => {
        if (this.isCut(from, to)) {
          this.stats.dropped++;
          return;
        }
        this.stats.delivered++;
        deliver();
      });
    }
  }
}

function pair(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
