import { DurableObject } from "cloudflare:workers";
import { configFromEnv, type HaloConfig } from "../src/config/config-schema";
import { type Region, regionSchema } from "../src/config/regions";
import { directoryStub } from "../src/http/directory-stub";
import {
  addedLatencyMs,
  type FaultPlan,
  faultPlanSchema,
  isPartitioned,
  isStopped,
  NO_FAULTS,
} from "../src/membership/fault-plan";
import {
  type GossipMessage,
  MembershipNode,
  type MembershipView,
  type StatusTransition,
} from "../src/membership/membership-node";
import { gossipMessageSchema } from "../src/membership/membership-schema";
import type { HotShard, RegionEntry, ShardLoadReport } from "../src/membership/region-entry";
import { SqliteMembershipStore } from "../src/storage/sqlite-membership-store";
import { withTimeout } from "../src/util/with-timeout";

/** Thrown by a directory that fault injection has stopped: to its callers it looks down. */
export class DirectoryStopped extends Error {
  override readonly name = "DirectoryStopped";
}

/**
 * A region's directory, `directory:{region}`: runs the membership core (src/membership) on its
 * alarm, one gossip round per `gossipIntervalMs`, exchanges digests with other regions'
 * directories over RPC, persists the table in SQLite, and serves it to the Worker. Every RPC
 * names the caller's idea of this directory's region, which the first call records: a Durable
 * Object does not know its own name.
 */
export class DirectoryDurableObject extends DurableObject<Env> {
  private readonly config: HaloConfig;
  private readonly store: SqliteMembershipStore;
  private region: Region | undefined;
  private node: MembershipNode | undefined;
  private faults: FaultPlan = NO_FAULTS;
  private savedRevision = -1;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = configFromEnv(env);
    this.store = new SqliteMembershipStore(ctx.storage);
    const stored = this.store.load();
    this.faults = stored.faults ?? NO_FAULTS;
    // A directory that ran before comes back at once, with a higher incarnation.
    if (stored.region && this.config.regions.includes(stored.region)) {
      this.region = stored.region;
      this.node = this.startNode(stored.region, stored.membership);
    }
  }

  /** The table as this region sees it. */
  async view(region: Region): Promise<MembershipView> {
    const node = await this.ensureStarted(region);
    this.assertAnswering();
    return node.view(Date.now());
  }

  /** One gossip message from a peer directory; the replies go back to it. */
  async gossip(region: Region, message: unknown): Promise<GossipMessage[]> {
    const node = await this.ensureStarted(region);
    this.assertAnswering();
    const parsed = gossipMessageSchema.parse(message);
    const replies = node.receive(parsed, Date.now());
    this.save();
    return replies;
  }

  async drain(region: Region): Promise<RegionEntry> {
    const entry = (await this.ensureStarted(region)).drain(Date.now());
    this.save();
    return entry;
  }

  async undrain(region: Region): Promise<RegionEntry> {
    const entry = (await this.ensureStarted(region)).undrain(Date.now());
    this.save();
    return entry;
  }

  /** Replaces the fault plan; answered even while stopped, so a stop can be lifted. */
  async setFaults(region: Region, plan: unknown): Promise<FaultPlan> {
    await this.ensureStarted(region);
    this.faults = faultPlanSchema.parse(plan);
    this.store.saveFaults(this.faults);
    return this.faults;
  }

  async getFaults(region: Region): Promise<FaultPlan> {
    await this.ensureStarted(region);
    return this.faults;
  }

  /** A shard's latest figures; the region's entry carries their sum from the next round. */
  async reportLoad(region: Region, shard: number, load: ShardLoadReport): Promise<void> {
    (await this.ensureStarted(region)).reportShardLoad(Date.now(), shard, load);
  }

  /** Every shard's latest report in this region (operators' per-shard view; not gossiped). */
  async shardLoads(region: Region): Promise<HotShard[]> {
    return (await this.ensureStarted(region)).shardLoads();
  }

  /** An operator's resize: the new count under the next epoch, gossiped from the next round. */
  async resize(region: Region, shards: number): Promise<RegionEntry> {
    const entry = (await this.ensureStarted(region)).resize(Date.now(), shards);
    this.save();
    return entry;
  }

  /** One gossip round. The next alarm is set first, so a slow or failing peer never stops the rhythm. */
  override async alarm(): Promise<void> {
    const node = this.node;
    const region = this.region;
    if (!node || !region) return;
    if (isStopped(this.faults, region)) {
      await this.ctx.storage.setAlarm(Date.now() + this.config.membership.gossipIntervalMs);
      return;
    }
    const { sends, nextTickAt } = node.tick(Date.now(), Math.random);
    this.save();
    await this.ctx.storage.setAlarm(nextTickAt);
    await Promise.all(sends.map(({ to, message }) => this.exchange(region, to as Region, message)));
  }

  /** Sends one message and feeds the replies (and theirs) through the core. A failure is a lost message. */
  private async exchange(self: Region, to: Region, message: GossipMessage): Promise<void> {
    const target = regionSchema.safeParse(to);
    if (!target.success || !this.config.regions.includes(target.data)) return;
    if (isPartitioned(this.faults, self, to)) return;
    const delay = addedLatencyMs(this.faults, self, to);
    try {
      if (delay > 0) await scheduler.wait(delay);
      const replies = await withTimeout(
        directoryStub(this.env.DIRECTORY, to).gossip(to, message),
        this.config.membership.ackTimeoutMs * 2,
        `gossip to ${to}`,
      );
      if (delay > 0) await scheduler.wait(delay);
      for (const reply of replies) {
        const parsed = gossipMessageSchema.safeParse(reply);
        if (!parsed.success || !this.node) continue;
        const onward = this.node.receive(parsed.data, Date.now());
        this.save();
        await Promise.all(onward.map((next) => this.exchange(self, to, next)));
      }
    } catch {
      // Unreachable, stopped or slow: the core sees an unanswered exchange, which is the point.
    }
  }

  private async ensureStarted(region: Region): Promise<MembershipNode> {
    const parsed = regionSchema.parse(region);
    if (this.region !== undefined && this.region !== parsed) {
      throw new Error(`directory of ${this.region} addressed as ${parsed}`);
    }
    if (!this.node) {
      this.region = parsed;
      this.store.saveRegion(parsed);
      this.node = this.startNode(parsed, undefined);
      this.save();
    }
    if ((await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(Date.now() + this.config.membership.gossipIntervalMs);
    }
    return this.node;
  }

  private startNode(
    region: Region,
    persisted: Parameters<typeof MembershipNode.start>[3],
  ): MembershipNode {
    const { membership } = this.config;
    return MembershipNode.start(
      {
        region,
        shards: this.config.shardCount(region),
        seeds: membership.seeds,
        loadTarget: {
          connections: this.config.rebalance.hotConnections,
          messagesPerSecond: this.config.rebalance.hotMessagesPerSecond,
        },
      },
      membership,
      Date.now(),
      persisted,
      (t) => logTransition(region, t),
    );
  }

  private assertAnswering(): void {
    if (this.region && isStopped(this.faults, this.region)) {
      throw new DirectoryStopped(`directory ${this.region} is stopped by fault injection`);
    }
  }

  /** Writes the table when something other than a heartbeat changed (one row, a few hundred bytes). */
  private save(): void {
    const node = this.node;
    if (!node || node.revision === this.savedRevision) return;
    this.store.saveMembership(node.persisted());
    this.savedRevision = node.revision;
  }
}

function logTransition(observer: Region, t: StatusTransition): void {
  if (t.region === observer && t.from === t.to) return;
  console.log(
    `membership ${observer}: ${t.region} ${t.from ?? "unknown"} -> ${t.to} (incarnation ${t.incarnation})`,
  );
}
