import type { HaloConfig } from "../src/config/config-schema";
import type { Region } from "../src/config/regions";
import type { RoomEffect, RoomReplica } from "../src/core/room-replica";
import { type ShardStub, shardStub } from "../src/http/shard-stub";
import { CloseCode } from "../src/protocol/close-codes";
import { handOffSchema, type RebalanceReport } from "../src/rebalance/handoff-schema";
import {
  carriesContent,
  documentBeyond,
  type HandOff,
  roomsToHandAway,
  shardsToPull,
  storedCoveredBy,
  storedStateVector,
} from "../src/rebalance/room-handoff";
import { ownerIndex, type ShardLayout } from "../src/routing/shard-layout";
import { shardAt } from "../src/routing/shard-router";
import type { SqlitePresenceStore } from "../src/storage/sqlite-presence-store";
import { SqliteRoomMoves } from "../src/storage/sqlite-room-moves";
import type { SqliteRoomStorage } from "../src/storage/sqlite-room-storage";
import { withTimeout } from "../src/util/with-timeout";
import type { TableView } from "./region-tables";
import { closeSocket } from "./room-sockets";

/** What the shard lends its mover. */
export interface MoveHost {
  ctx: DurableObjectState;
  env: Env;
  config: HaloConfig;
  address(): { region: Region; index: number } | null;
  table(now: number, fresh?: boolean): Promise<TableView>;
  storage: SqliteRoomStorage;
  presenceStore: SqlitePresenceStore;
  loaded(name: string): RoomReplica | undefined;
  /** Writes what the room holds, hands its replication over, and drops it from memory (sockets stay). */
  unload(name: string): void;
  run(room: RoomReplica, effects: RoomEffect[]): Promise<void>;
  wake(at: number | null): Promise<void>;
}

/**
 * The shard's side of moving rooms between the shards of its region (src/rebalance: the
 * protocol and its decisions). It answers pulls from new owners, pulls rooms it now owns from
 * their former shards before serving them, drops a copy once its new owner confirms it, and
 * retries on the alarm whatever did not finish. A copy is never dropped unconfirmed.
 */
export class ShardMoves {
  readonly #moves: SqliteRoomMoves;
  /** Rooms this shard owns whose pull did not finish: retried on the alarm. */
  readonly #pulls = new Set<string>();
  /** Set when some hand-away did not finish: the alarm runs `rebalance` again. */
  #retryAt: number | null = null;

  constructor(private readonly host: MoveHost) {
    this.#moves = new SqliteRoomMoves(host.ctx.storage);
  }

  /** True when the room was handed to another shard: its sockets' frames are no longer applied here. */
  movedOut(room: string): boolean {
    return this.#moves.movedOutAt(room) !== undefined;
  }

  /** This region's layout; read afresh when a caller routed by a newer epoch than the cached one. */
  async layout(now: number, atLeastEpoch = 0): Promise<ShardLayout> {
    const region = this.#region();
    let table = await this.host.table(now);
    let layout = table.layouts(region);
    if ((layout?.epoch ?? 0) < atLeastEpoch) {
      table = await this.host.table(now, true);
      layout = table.layouts(region);
    }
    return layout ?? { count: this.host.config.shardCount(region), epoch: 0, previous: [] };
  }

  /** The index of the shard that owns `room` now, or null when this shard is it. */
  async elsewhere(room: string, now: number, atLeastEpoch = 0): Promise<number | null> {
    const self = this.host.address()?.index;
    if (self === undefined) return null;
    const owner = ownerIndex(room, await this.layout(now, atLeastEpoch));
    return owner === self ? null : owner;
  }

  /** The stub of another shard of this region. */
  stub(index: number): ShardStub {
    return shardStub(this.host.env.SHARD, shardAt(this.#region(), index));
  }

  /**
   * Before this shard opens a room it owns: its state is pulled from the shards that held it
   * under earlier counts (once per epoch), so the first client gets the whole document. A pull
   * that does not finish in time is retried on the alarm while the room serves.
   */
  async beforeOpen(room: string, now: number): Promise<void> {
    const self = this.host.address()?.index;
    if (self === undefined) return;
    const layout = await this.layout(now);
    if (this.movedOut(room) && ownerIndex(room, layout) === self) {
      // Back on this shard (a resize undone): its stale members would rise as ghosts.
      this.host.presenceStore.drop(room);
      this.#moves.clearOut(room);
    }
    const from = shardsToPull(room, layout, self, this.#moves.arrivedAt(room));
    if (from.length === 0) return;
    if (await this.#pull(room, from, layout.epoch, undefined)) return;
    this.#pulls.add(room);
    await this.#retryLater(now);
  }

  /**
   * A new owner's pull (RPC): unless this shard owns the room after all, it is marked moved
   * out, written and dropped from memory, its sockets closed with `moved`, and its stored state
   * beyond the puller's vector returned.
   */
  async handOff(room: string, epoch: number, stateVector: Uint8Array): Promise<HandOff> {
    const now = Date.now();
    if ((await this.elsewhere(room, now, epoch)) === null) return { held: false, reason: "owner" };
    const layout = await this.layout(now);
    this.#moves.markOut(room, layout.epoch);
    this.host.unload(room);
    for (const ws of this.host.ctx.getWebSockets(room))
      closeSocket(ws, CloseCode.Moved, "moved: the room moved to another shard; reconnect");
    const stored = this.host.storage.load(room);
    const presence = this.host.presenceStore.exportRoom(room);
    if (!stored.snapshot && stored.log.length === 0 && presence.upsert.length === 0) {
      this.#moves.clearOut(room);
      return { held: false, reason: "empty" };
    }
    await this.#retryLater(now); // until the new owner confirms
    return { held: true, update: documentBeyond(stored, stateVector), presence };
  }

  /** The new owner holds everything (RPC): the copy goes, if its vector covers all of it. */
  release(room: string, stateVector: Uint8Array): boolean {
    if (!this.movedOut(room)) return true;
    if (!storedCoveredBy(this.host.storage.load(room), stateVector)) return false;
    this.host.storage.drop(room);
    this.host.presenceStore.drop(room);
    this.#moves.clearOut(room);
    return true;
  }

  /**
   * An operator changed the layout or drained the region (RPC, and the alarm's retry): every
   * room stored here that another shard now owns is handed to it (the owner is asked to pull
   * it), and a drained region's sockets are told to move.
   */
  async rebalance(now: number): Promise<RebalanceReport> {
    const self = this.host.address()?.index ?? 0;
    const table = await this.host.table(now, true);
    const layout = await this.layout(now);
    const stored = new Set([
      ...this.host.storage.rooms(),
      ...this.host.presenceStore.rooms(),
      ...this.#moves.movedOut(),
    ]);
    const away = roomsToHandAway(stored, layout, self);
    await Promise.allSettled(
      away.map(({ room, owner }) =>
        withTimeout(
          this.stub(owner).adopt(this.#region(), owner, room, self),
          this.host.config.rebalance.handOffTimeoutMs * 2,
          `shard ${owner}`,
        ),
      ),
    );
    // A room is done when its copy here is gone (released, or nothing was stored).
    const pending = away.filter(
      ({ room }) => this.movedOut(room) || this.host.storage.rooms().includes(room),
    ).length;
    let socketsMoved = 0;
    if (table.status.get(this.#region()) === "left") {
      for (const ws of this.host.ctx.getWebSockets()) {
        closeSocket(ws, CloseCode.Moved, "moved: this region is drained; reconnect");
        socketsMoved++;
      }
    }
    this.#retryAt = pending > 0 ? now + this.host.config.rebalance.retryMs : null;
    await this.host.wake(this.#retryAt);
    return { shard: self, epoch: layout.epoch, handedAway: away.length, pending, socketsMoved };
  }

  /**
   * A former owner asks this shard to take a room (RPC): pulled from that shard now, even if
   * this shard pulled at this epoch before (the former owner still holds a copy to release).
   */
  async adopt(room: string, from: number, now: number): Promise<boolean> {
    const self = this.host.address()?.index;
    const layout = await this.layout(now, 0);
    if (self === undefined || ownerIndex(room, layout) !== self || from === self) return false;
    return this.#pull(room, [from], layout.epoch, this.host.loaded(room));
  }

  /** The alarm: pulls that did not finish, and hand-aways not yet confirmed. Returns the next retry. */
  async onAlarm(now: number): Promise<number | null> {
    for (const room of [...this.#pulls]) {
      const layout = await this.layout(now);
      const self = this.host.address()?.index ?? 0;
      const from = shardsToPull(room, layout, self, this.#moves.arrivedAt(room));
      if (from.length === 0 || (await this.#pull(room, from, layout.epoch, this.host.loaded(room))))
        this.#pulls.delete(room);
    }
    if (this.#retryAt !== null && this.#retryAt <= now) await this.rebalance(now);
    if (this.#pulls.size > 0) return now + this.host.config.rebalance.retryMs;
    return this.#retryAt;
  }

  /**
   * Pulls `room` from each former owner, writes what they hand over (into the loaded room when
   * it already serves, else into storage as a restart would find it), and tells each to drop
   * its copy. True when every former owner answered.
   */
  async #pull(
    room: string,
    from: readonly number[],
    epoch: number,
    loaded: RoomReplica | undefined,
  ): Promise<boolean> {
    const timeout = this.host.config.rebalance.handOffTimeoutMs;
    const region = this.#region();
    let complete = true;
    const handed: number[] = [];
    for (const index of from) {
      try {
        const vector = loaded ? loaded.syncState().stateVector : this.#storedVector(room);
        const answer = handOffSchema.parse(
          await withTimeout(
            this.stub(index).handOff(region, index, room, epoch, vector),
            timeout,
            `shard ${index}`,
          ),
        );
        if (!answer.held) {
          if (answer.reason === "owner") complete = false; // its table is behind: ask again
          continue;
        }
        if (loaded) {
          if (carriesContent(answer.update))
            await this.host.run(loaded, loaded.applyHandOff(index, answer.update, Date.now()));
        } else {
          if (carriesContent(answer.update)) this.host.storage.append(room, answer.update);
          this.host.presenceStore.write(room, answer.presence);
        }
        handed.push(index);
      } catch {
        complete = false;
      }
    }
    if (complete) this.#moves.markArrived(room, epoch);
    const vector = loaded ? loaded.syncState().stateVector : this.#storedVector(room);
    // A copy not released now is offered again by its shard's retry.
    await Promise.allSettled(
      handed.map((index) =>
        withTimeout(this.stub(index).release(region, index, room, vector), timeout, "release"),
      ),
    );
    return complete;
  }

  #storedVector(room: string): Uint8Array {
    return storedStateVector(this.host.storage.load(room));
  }

  async #retryLater(now: number): Promise<void> {
    const at = now + this.host.config.rebalance.retryMs;
    if (this.#retryAt === null || at < this.#retryAt) this.#retryAt = at;
    await this.host.wake(this.#retryAt);
  }

  #region(): Region {
    const address = this.host.address();
    if (!address) throw new Error("shard address unknown");
    return address.region;
  }
}
