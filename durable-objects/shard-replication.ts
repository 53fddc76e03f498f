import type { HaloConfig } from "../src/config/config-schema";
import type { Region } from "../src/config/regions";
import type { RoomEffect, RoomReplica } from "../src/core/room-replica";
import { shardStub } from "../src/http/shard-stub";
import { addedLatencyMs, isPartitioned, isStopped } from "../src/membership/fault-plan";
import type { Member } from "../src/presence/presence-schema";
import { unlessMoved } from "../src/rebalance/shard-mover";
import {
  nextReplicaTick,
  receiveReplicaMessage,
  tickReplica,
} from "../src/replication/replica-driver";
import type { Addressed, ReplicaMessage } from "../src/replication/replica-messages";
import { replicaMessageSchema } from "../src/replication/replication-schema";
import { RoomLink } from "../src/replication/room-link";
import { shardFor } from "../src/routing/shard-router";
import { SqliteReplicatingRooms } from "../src/storage/sqlite-replicating-rooms";
import { withTimeout } from "../src/util/with-timeout";
import { RegionTables, type TableView } from "./region-tables";

/** What the shard lends its replication adapter. */
export interface ReplicationHost {
  ctx: DurableObjectState;
  env: Env;
  config: HaloConfig;
  /** This shard's region, once known (from the Worker's headers or a peer's call). */
  region(): Region | undefined;
  /** The room, loaded from storage when needed. */
  room(name: string): Promise<RoomReplica>;
  /** The room if it is loaded. */
  loaded(name: string): RoomReplica | undefined;
  loadedNames(): string[];
  run(room: RoomReplica, effects: RoomEffect[]): Promise<void>;
  /** Moves the alarm earlier, to `at` (Unix ms). */
  wake(at: number | null): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Replies to a reply are followed this deep; the protocol needs three (sync, sync, leave). */
const MAX_CHAIN = 4;

/**
 * The shard's side of replication between regions: carries the pure cores' messages over
 * Durable Object RPC to the peer region's shard for the room, reads the membership table from
 * the region's directory, and times batches and anti-entropy. Everything it decides comes from
 * `replica-driver.ts` and `room-link.ts`, which the simulator runs the same way.
 *
 * A batch window is timed with `setTimeout` (milliseconds, and the object is awake anyway);
 * anti-entropy with the alarm. A timer lost to an eviction loses nothing: the change is in
 * SQLite, and the next anti-entropy carries it.
 */
export class ShardReplication {
  private readonly links = new Map<string, RoomLink>();
  private readonly tables: RegionTables;
  private readonly replicating: SqliteReplicatingRooms;
  /** Dead regions whose members this shard's loaded rooms have dropped. */
  private handledDead = new Set<Region>();
  private batchTimer: ReturnType<typeof setTimeout> | null = null;
  private batchTimerAt = Number.POSITIVE_INFINITY;

  constructor(private readonly host: ReplicationHost) {
    this.tables = new RegionTables(host.env, host.config, host.region);
    this.replicating = new SqliteReplicatingRooms(host.ctx.storage);
  }

  /** True while a room's replica takes part in replication: it is not unloaded (its link would be lost). */
  inUse(name: string): boolean {
    const link = this.links.get(name);
    return link !== undefined && (link.active || this.host.loaded(name)?.batchDueAt != null);
  }

  /** Only a deployment of several regions replicates. */
  get enabled(): boolean {
    return this.host.config.regions.length > 1;
  }

  /** After a local call into a room: its link learns the connection count, and due work goes out. */
  async afterLocal(room: RoomReplica, now: number): Promise<void> {
    const region = this.host.region();
    if (!this.enabled || region === undefined) return;
    const link = await this.linkFor(room.name, region, now);
    link.noteConnections(room.connectionCount, now);
    await this.schedule(room, link, now);
  }

  /** A peer region's message (RPC): applied, and the answers for the sender returned. */
  async receive(message: ReplicaMessage, now: number): Promise<ReplicaMessage[]> {
    const region = this.host.region();
    if (region === undefined) return [];
    const table = await this.tables.current(now);
    const stopped = [region, message.from as Region].find((r) => isStopped(table.faults, r));
    if (stopped) throw new Error(`region ${stopped} is stopped by fault injection`);
    const replies = await this.deliver(message, region, now);
    this.sendAll(
      replies.filter((reply) => reply.to !== message.from),
      1,
    );
    return replies.filter((reply) => reply.to === message.from).map((reply) => reply.message);
  }

  /**
   * A room was loaded. If it was replicating when this object's memory was last lost, its link
   * takes part again at once: a change stored just before may have reached no peer.
   */
  async roomLoaded(room: RoomReplica, now: number): Promise<void> {
    const region = this.host.region();
    if (!this.enabled || region === undefined || this.links.has(room.name)) return;
    if (!this.replicating.list().includes(room.name)) return;
    const link = await this.linkFor(room.name, region, now);
    link.noteLocalChanges(now);
    await this.schedule(room, link, now);
  }

  /**
   * The alarm: rooms that were replicating before a restart are loaded (and so resumed), the
   * table is read again, a newly dead region's members leave every loaded room, and
   * anti-entropy that is due goes out. Returns when replication next needs the alarm.
   */
  async onAlarm(now: number): Promise<number | null> {
    const region = this.host.region();
    if (!this.enabled || region === undefined) return null;
    for (const name of this.replicating.list()) {
      if (this.host.loaded(name)) continue;
      // A room moved to another shard of this region replicates from there.
      if (!(await unlessMoved(this.host.room(name)))) this.replicating.set(name, false);
    }
    if (this.links.size === 0) return null;
    const table = await this.tables.current(now, true);
    // Deaths are handled against their own record, not the cached table: a message path may
    // have refreshed the table first, and a death seen only there would never be handled.
    for (const lost of table.dead) {
      if (this.handledDead.has(lost)) continue;
      for (const name of this.host.loadedNames()) {
        const room = this.host.loaded(name);
        if (room) await this.host.run(room, room.regionLost(lost, now));
      }
    }
    this.handledDead = new Set(table.dead);
    let next: number | null = null;
    for (const [name, link] of this.links) {
      link.setCandidates(table.candidates, now);
      const room = link.active
        ? ((await unlessMoved(this.host.room(name))) ?? undefined)
        : this.host.loaded(name);
      if (!room) {
        this.links.delete(name); // dormant and unloaded: nothing to keep
        continue;
      }
      const due = nextReplicaTick(room, link);
      if (due !== null && due <= now) this.sendAll(tickReplica(room, link, now), 0);
      const after = nextReplicaTick(room, link);
      if (after !== null && (next === null || after < next)) next = after;
      this.replicating.set(name, link.active);
      // A resting home keeps its directory of peers until they expire.
      if (link.forgettable(now) && room.batchDueAt === null && room.connectionCount === 0)
        this.links.delete(name);
    }
    return next;
  }

  /**
   * Asks each region's shard for the members it owns (`?consistency=all`), as a peer message
   * would travel (fault injection included); a region that does not answer within `timeoutMs`
   * gets `null`.
   */
  async askOwnMembers(
    room: string,
    regions: readonly Region[],
    timeoutMs: number,
  ): Promise<Array<{ region: Region; members: Member[] | null }>> {
    const self = this.host.region();
    const { faults, layouts } = await this.tables.current(Date.now());
    return Promise.all(
      regions.map(async (region) => {
        if (
          self !== undefined &&
          (isPartitioned(faults, self, region) || isStopped(faults, region))
        )
          return { region, members: null };
        const delay = self === undefined ? 0 : addedLatencyMs(faults, self, region);
        const ask = async () => {
          if (delay > 0) await sleep(delay);
          const shard = shardFor(room, region, this.host.config, layouts);
          const members = await shardStub(this.host.env.SHARD, shard).localMembers(room);
          if (delay > 0) await sleep(delay);
          return members;
        };
        try {
          return { region, members: await withTimeout(ask(), timeoutMs, `region ${region}`) };
        } catch {
          return { region, members: null };
        }
      }),
    );
  }

  /** The membership table as this shard last read it (`fresh`: read it now). */
  table(now: number, fresh = false): Promise<TableView> {
    return this.tables.current(now, fresh);
  }

  /**
   * The room is handed to another shard of this region: its waiting batch goes to the peers
   * now (this shard's writes must not wait on a link it is about to drop), then the link goes.
   */
  handOver(name: string, now: number): void {
    const link = this.links.get(name);
    const room = this.host.loaded(name);
    if (link && room) this.sendAll(tickReplica(room, link, now, true), 0);
    this.links.delete(name);
    this.replicating.set(name, false);
  }

  private async linkFor(name: string, region: Region, now: number): Promise<RoomLink> {
    let link = this.links.get(name);
    if (!link) {
      const { antiEntropyMs, idleLeaveMs, peerExpiryMs, gapRepairMs } =
        this.host.config.replication;
      link = new RoomLink(name, region, { antiEntropyMs, idleLeaveMs, peerExpiryMs, gapRepairMs });
      link.setCandidates((await this.tables.current(now)).candidates, now);
      this.links.set(name, link);
    }
    return link;
  }

  private async deliver(
    message: ReplicaMessage,
    region: Region,
    now: number,
  ): Promise<Addressed[]> {
    const table = await this.tables.current(now);
    const room = await this.host.room(message.room);
    const link = await this.linkFor(message.room, region, now);
    const serves = (r: string) => !table.dead.has(r as Region);
    const { effects, replies } = receiveReplicaMessage(room, link, message, now, serves);
    await this.host.run(room, effects);
    await this.schedule(room, link, now);
    return replies;
  }

  /** Sends what is due now; times a batch window, and sets the alarm for anti-entropy. */
  private async schedule(room: RoomReplica, link: RoomLink, now: number): Promise<void> {
    this.replicating.set(room.name, link.active);
    const next = nextReplicaTick(room, link);
    if (next === null) return;
    if (next <= now) {
      link.setCandidates((await this.tables.current(now)).candidates, now);
      this.sendAll(tickReplica(room, link, now), 0);
    }
    const batchAt = room.batchDueAt;
    if (batchAt !== null) this.armBatchTimer(batchAt, now);
    await this.host.wake(link.nextTickAt);
  }

  private armBatchTimer(at: number, now: number): void {
    if (this.batchTimer !== null && this.batchTimerAt <= at) return;
    if (this.batchTimer !== null) clearTimeout(this.batchTimer);
    this.batchTimerAt = at;
    this.batchTimer = setTimeout(() => this.flushBatches(), Math.max(0, at - now));
  }

  /** The batch window ended: every room's waiting batch goes to its peers. */
  private flushBatches(): void {
    this.batchTimer = null;
    this.batchTimerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next: number | null = null;
    for (const [name, link] of this.links) {
      const room = this.host.loaded(name);
      const due = room?.batchDueAt ?? null;
      if (!room || due === null) continue;
      if (due <= now) {
        for (const out of tickReplica(room, link, now, true)) this.sendAll([out], 0);
      } else if (next === null || due < next) {
        next = due;
      }
    }
    if (next !== null) this.armBatchTimer(next, now);
  }

  private sendAll(out: readonly Addressed[], depth: number): void {
    for (const addressed of out) this.host.ctx.waitUntil(this.send(addressed, depth));
  }

  /** One message to the peer region's shard for the room; its answers are delivered here. A failure is a lost message. */
  private async send({ to, message }: Addressed, depth: number): Promise<void> {
    const region = this.host.region();
    if (region === undefined) return;
    const target = to as Region;
    try {
      const { faults, layouts } = await this.tables.current(Date.now());
      if (isPartitioned(faults, region, target) || isStopped(faults, region)) return;
      const delay = addedLatencyMs(faults, region, target);
      if (delay > 0) await sleep(delay);
      const shard = shardFor(message.room, target, this.host.config, layouts);
      const stub = shardStub(this.host.env.SHARD, shard);
      const answers = replicaMessageSchema
        .array()
        .parse(
          await withTimeout(
            stub.replicate(target, shard.index, message),
            this.host.config.replication.rpcTimeoutMs,
            `shard ${shard.name}`,
          ),
        );
      if (delay > 0) await sleep(delay);
      for (const answer of answers) {
        const replies = await this.deliver(answer, region, Date.now());
        if (depth + 1 < MAX_CHAIN) this.sendAll(replies, depth + 1);
      }
    } catch {
      // Lost: the change is stored here, and the next anti-entropy with that region carries it.
    }
  }
}
