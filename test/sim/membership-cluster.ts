import {
  type GossipMessage,
  type GossipSettings,
  MembershipNode,
  type PersistedMembership,
  type StatusTransition,
} from "../../src/membership/membership-node";
import type { MemberStatus } from "../../src/membership/region-entry";
import type { RttMatrix } from "./latency";
import { type LinkFaults, NO_FAULTS, SimNetwork } from "./network";
import { SimRandom } from "./random";
import { Scheduler } from "./scheduler";

export interface ClusterOptions {
  seed: number;
  regions: readonly string[];
  settings: GossipSettings;
  rtt: RttMatrix;
  faults?: LinkFaults;
  /** Regions every node contacts while it does not know them (default: all). */
  seeds?: readonly string[];
}

export interface ObservedTransition extends StatusTransition {
  observer: string;
}

/**
 * Many regions' membership cores on one virtual clock, wired exactly as the directory Durable
 * Object wires one: a tick per gossip round, each message's replies sent back to its sender,
 * and the persisted state written whenever the core's revision changes (what a crash keeps).
 */
export class MembershipCluster {
  readonly scheduler = new Scheduler();
  readonly random: SimRandom;
  readonly network: SimNetwork;
  readonly transitions: ObservedTransition[] = [];
  readonly #nodes = new Map<string, MembershipNode>();
  readonly #stored = new Map<
    string,
    { node: MembershipNode; revision: number; state: PersistedMembership }
  >();
  /** Bumped on each crash, so the crashed life's pending ticks do nothing. */
  readonly #lives = new Map<string, number>();
  /** Regions whose rounds come late: each tick is delayed by up to this fraction of a round. */
  readonly #sluggish = new Map<string, number>();
  readonly #nodeRandom: SimRandom;

  constructor(readonly options: ClusterOptions) {
    this.random = new SimRandom(options.seed);
    this.#nodeRandom = this.random.fork("nodes");
    this.network = new SimNetwork(
      this.scheduler,
      this.random.fork("network"),
      options.rtt,
      options.faults ?? NO_FAULTS,
    );
  }

  get regions(): readonly string[] {
    return this.options.regions;
  }

  get now(): number {
    return this.scheduler.now;
  }

  /** Starts every region within one round, at random phases. */
  startAll(): void {
    const phases = this.random.fork("phases");
    for (const region of this.regions) {
      this.scheduler.after(phases.between(0, this.options.settings.gossipIntervalMs), () =>
        this.start(region),
      );
    }
  }

  /** Starts (or restarts) a region, from what it had stored if anything. */
  start(region: string): void {
    if (this.#nodes.has(region)) return;
    const life = (this.#lives.get(region) ?? 0) + 1;
    this.#lives.set(region, life);
    const node = MembershipNode.start(
      { region, shards: 1, seeds: this.options.seeds ?? this.regions },
      this.options.settings,
      this.now,
      this.#stored.get(region)?.state,
      (t) => this.transitions.push({ ...t, observer: region }),
    );
    this.#nodes.set(region, node);
    this.#persist(node);
    this.#tickLoop(region, life, node);
  }

  /** The region stops: no rounds, no answers; its stored state stays. */
  crash(region: string): void {
    this.#nodes.delete(region);
    this.#lives.set(region, (this.#lives.get(region) ?? 0) + 1);
  }

  isUp(region: string): boolean {
    return this.#nodes.has(region);
  }

  up(): string[] {
    return this.regions.filter((region) => this.#nodes.has(region));
  }

  node(region: string): MembershipNode | undefined {
    return this.#nodes.get(region);
  }

  /** Slow region: `extraMs` more latency on each of its messages, and rounds late by up to `lateness` x the interval. */
  makeSlow(region: string, extraMs: number, lateness: number): void {
    this.network.slow(region, extraMs);
    this.#sluggish.set(region, lateness);
  }

  drain(region: string): void {
    const node = this.#nodes.get(region);
    if (!node) throw new Error(`${region} is down`);
    node.drain(this.now);
    this.#persist(node);
  }

  undrain(region: string): void {
    const node = this.#nodes.get(region);
    if (!node) throw new Error(`${region} is down`);
    node.undrain(this.now);
    this.#persist(node);
  }

  runFor(ms: number): void {
    this.scheduler.runUntil(this.now + ms);
  }

  /** Runs until `done()` holds or `ms` pass; the time it took, or undefined. */
  runUntil(done: () => boolean, ms: number): number | undefined {
    const start = this.now;
    const at = this.scheduler.runUntilTrue(done, start + ms);
    return at === undefined ? undefined : at - start;
  }

  statusOf(observer: string, region: string): MemberStatus | undefined {
    return this.#nodes.get(observer)?.statusOf(region);
  }

  /** Every up region sees `region` with `status` (and, if given, exactly this incarnation or above). */
  allSee(region: string, status: MemberStatus, observers: readonly string[] = this.up()): boolean {
    return observers.every((observer) => this.statusOf(observer, region) === status);
  }

  /**
   * Every up region's table holds the same regions with the same status and incarnation (the
   * parts that matter to routing; heartbeats move on every round).
   */
  converged(): boolean {
    const tables = this.up().map((region) => this.#summary(region));
    return tables.every((table) => table === tables[0]);
  }

  #summary(region: string): string {
    const node = this.#nodes.get(region);
    if (!node) return "";
    return node
      .view(this.now)
      .entries.map((e) => `${e.region}:${e.status}:${e.incarnation}`)
      .join(",");
  }

  #tickLoop(region: string, life: number, node: MembershipNode): void {
    if (this.#lives.get(region) !== life) return;
    const random = () => this.#nodeRandom.next();
    const { sends, nextTickAt } = node.tick(this.now, random);
    this.#persist(node);
    for (const { to, message } of sends) this.#send(region, to, message);
    const late = this.#sluggish.get(region) ?? 0;
    const delay = late > 0 ? this.#nodeRandom.between(0, late * (nextTickAt - this.now)) : 0;
    this.scheduler.at(nextTickAt + delay, () => this.#tickLoop(region, life, node));
  }

  #send(from: string, to: string, message: GossipMessage): void {
    this.network.send(from, to, message, () => {
      const node = this.#nodes.get(to);
      if (!node) return; // a crashed region answers nothing
      const replies = node.receive(structuredClone(message), this.now);
      this.#persist(node);
      for (const reply of replies) this.#send(to, from, reply);
    });
  }

  #persist(node: MembershipNode): void {
    const stored = this.#stored.get(node.region);
    if (stored?.node === node && stored.revision === node.revision) return;
    this.#stored.set(node.region, { node, revision: node.revision, state: node.persisted() });
  }
}
