import type { RoomEffect, RoomReplica } from "../core/room-replica";
import type { PresenceWrite } from "../presence/presence-store";
import { ownerIndex, type ShardLayout } from "../routing/shard-layout";
import type { RoomStorage } from "../storage/room-storage";
import { handOffSchema, type RebalanceReport } from "./handoff-schema";
import {
  carriesContent,
  documentBeyond,
  type HandOff,
  roomsToHandAway,
  shardsToPull,
  storedCoveredBy,
  storedStateVector,
} from "./room-handoff";

/** A room another shard of this region owns now: this shard does not open it. */
export class RoomMoved extends Error {
  override readonly name = "RoomMoved";
  constructor(readonly room: string) {
    super(`room ${room} moved to another shard`);
  }
}

/** `promise`'s value, or null when it failed because the room moved away (other failures stand). */
export async function unlessMoved<T>(promise: Promise<T>): Promise<T | null> {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof RoomMoved) return null;
    throw error;
  }
}

/** Another shard of this region, as the mover calls it (Durable Object RPC in the shard). */
export interface MovePeer {
  handOff(room: string, epoch: number, stateVector: Uint8Array): Promise<unknown>;
  release(room: string, stateVector: Uint8Array): Promise<boolean>;
  adopt(room: string, from: number): Promise<boolean>;
}

/** Where the mover keeps its records (SQLite in the shard: sqlite-room-moves.ts). */
export interface MoveRecords {
  movedOutAt(room: string): number | undefined;
  movedOut(): string[];
  markOut(room: string, epoch: number): void;
  clearOut(room: string): void;
  arrivedAt(room: string): number;
  markArrived(room: string, epoch: number): void;
  /** The newest layout epoch whose hand-aways all finished here. */
  rebalancedAt(): number;
  markRebalanced(epoch: number): void;
}

/** The document store, with the two calls a move adds. */
export interface MovableRoomStorage extends RoomStorage {
  rooms(): string[];
  drop(room: string): void;
}

/** The presence store, as far as a move needs it. */
export interface MovablePresence {
  rooms(): string[];
  exportRoom(room: string): PresenceWrite;
  write(room: string, change: PresenceWrite): void;
  drop(room: string): void;
}

/** What the shard lends its mover: its address, table, stores, rooms, sockets and timers. */
export interface MoveHost {
  /** This shard's index in its region, once known. */
  index(): number | undefined;
  /** The region's layout and whether the region is drained (`fresh`: read the table now). */
  table(now: number, fresh?: boolean): Promise<{ layout: ShardLayout; drained: boolean }>;
  peer(index: number): MovePeer;
  records: MoveRecords;
  storage: MovableRoomStorage;
  presenceStore: MovablePresence;
  loaded(name: string): RoomReplica | undefined;
  /** Writes what the room holds, hands its replication over, and drops it from memory (sockets stay). */
  unload(name: string): void;
  run(room: RoomReplica, effects: RoomEffect[]): Promise<void>;
  /** Closes the room's sockets (every socket when `room` is null) with `moved`; returns how many. */
  closeSockets(room: string | null, reason: string): number;
  wake(at: number | null): Promise<void>;
  /** `promise`, or a rejection after `ms` (a peer that does not answer). */
  within<T>(promise: Promise<T>, ms: number, what: string): Promise<T>;
  now(): number;
  settings: { handOffTimeoutMs: number; retryMs: number };
}

/**
 * A shard's side of moving rooms between the shards of its region (room-handoff.ts: the
 * protocol and its decisions), over narrow interfaces: the shard runs it on Durable Object RPC,
 * SQLite and its alarm; the rebalance simulator on a virtual network, with crashes. It answers pulls from new owners, pulls rooms it now owns from
 * their former shards before serving them, drops a copy once its new owner confirms it, and
 * retries on the alarm whatever did not finish. A copy is never dropped unconfirmed.
 */
export class ShardMover {
  /** Per room pulled into storage, the members handed over present (see `takeArrivals`). */
  readonly #arrivals = new Map<string, Set<number>>();
  /** Rooms this shard owns whose pull did not finish: retried on the alarm. */
  readonly #pulls = new Set<string>();
  /** Set when some hand-away did not finish: the alarm runs `rebalance` again. */
  #retryAt: number | null = null;

  readonly #moves: MoveRecords;

  constructor(private readonly host: MoveHost) {
    this.#moves = host.records;
  }

  /** True when the room was handed to another shard: its sockets' frames are no longer applied here. */
  movedOut(room: string): boolean {
    return this.#moves.movedOutAt(room) !== undefined;
  }

  /** This region's layout; read afresh when a caller routed by a newer epoch than the cached one. */
  async layout(now: number, atLeastEpoch = 0): Promise<ShardLayout> {
    let { layout } = await this.host.table(now);
    if (layout.epoch < atLeastEpoch) ({ layout } = await this.host.table(now, true));
    // A layout this shard has not rebalanced for (it missed the operator's call, or crashed
    // during it): the alarm hands its rooms away now, so a move never waits on a lost call.
    if (layout.epoch > this.#moves.rebalancedAt() && this.#retryAt === null) {
      this.#retryAt = now;
      await this.host.wake(now);
    }
    return layout;
  }

  /** The index of the shard that owns `room` now, or null when this shard is it. */
  async elsewhere(room: string, now: number, atLeastEpoch = 0): Promise<number | null> {
    const self = this.host.index();
    if (self === undefined) return null;
    const owner = ownerIndex(room, await this.layout(now, atLeastEpoch));
    return owner === self ? null : owner;
  }

  /**
   * Before this shard opens a room it owns: its state is pulled from the shards that held it
   * under earlier counts (once per epoch), so the first client gets the whole document. A pull
   * that does not finish in time is retried on the alarm while the room serves.
   */
  async beforeOpen(room: string, now: number): Promise<void> {
    const self = this.host.index();
    if (self === undefined) return;
    const layout = await this.layout(now);
    if (this.movedOut(room) && ownerIndex(room, layout) === self) {
      // Back on this shard (a resize undone): its stale members would rise as ghosts.
      this.host.presenceStore.drop(room);
      this.#moves.clearOut(room);
    }
    const from = shardsToPull(room, layout, self, this.#moves.arrivedAt(room));
    if (from.length === 0) return;
    if (await this.#pull(room, from, layout.epoch)) return;
    this.#pulls.add(room);
    await this.#retryLater(now);
  }

  /**
   * The members a pull just brought over present, for the room being opened: they keep their
   * status while their clients reconnect (`rebalance.movedGraceMs`) instead of flickering.
   */
  takeArrivals(room: string): ReadonlySet<number> {
    const arriving = this.#arrivals.get(room) ?? new Set<number>();
    this.#arrivals.delete(room);
    return arriving;
  }

  /**
   * A new owner's pull (RPC): unless this shard owns the room after all, it is marked moved
   * out, written and dropped from memory, its sockets closed with `moved`, and its stored state
   * beyond the puller's vector returned.
   */
  async handOff(room: string, epoch: number, stateVector: Uint8Array): Promise<HandOff> {
    const now = this.host.now();
    if ((await this.elsewhere(room, now, epoch)) === null) return { held: false, reason: "owner" };
    const layout = await this.layout(now);
    this.#moves.markOut(room, layout.epoch);
    this.host.unload(room);
    this.host.closeSockets(room, "moved: the room moved to another shard; reconnect");
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
    const self = this.host.index() ?? 0;
    const { layout, drained } = await this.host.table(now, true);
    const stored = new Set([
      ...this.host.storage.rooms(),
      ...this.host.presenceStore.rooms(),
      ...this.#moves.movedOut(),
    ]);
    const away = roomsToHandAway(stored, layout, self);
    await Promise.allSettled(
      away.map(({ room, owner }) =>
        this.host.within(
          this.host.peer(owner).adopt(room, self),
          this.host.settings.handOffTimeoutMs * 2,
          `shard ${owner}`,
        ),
      ),
    );
    // A room is done when its copy here is gone (released, or nothing was stored).
    const left = new Set(this.host.storage.rooms());
    const pending = away.filter(({ room }) => this.movedOut(room) || left.has(room)).length;
    const socketsMoved = drained
      ? this.host.closeSockets(null, "moved: this region is drained; reconnect")
      : 0;
    this.#retryAt = pending > 0 ? now + this.host.settings.retryMs : null;
    if (pending === 0) this.#moves.markRebalanced(layout.epoch);
    await this.host.wake(this.#retryAt);
    return { shard: self, epoch: layout.epoch, handedAway: away.length, pending, socketsMoved };
  }

  /**
   * A former owner asks this shard to take a room (RPC): pulled from that shard now, even if
   * this shard pulled at this epoch before (the former owner still holds a copy to release).
   */
  async adopt(room: string, from: number, now: number): Promise<boolean> {
    const self = this.host.index();
    const layout = await this.layout(now, 0);
    if (self === undefined || ownerIndex(room, layout) !== self || from === self) return false;
    return this.#pull(room, [from], layout.epoch);
  }

  /** The alarm: pulls that did not finish, and hand-aways not yet confirmed. Returns the next retry. */
  async onAlarm(now: number): Promise<number | null> {
    await this.layout(now); // a new epoch since the last rebalance schedules one (see layout)
    for (const room of [...this.#pulls]) {
      const layout = await this.layout(now);
      const self = this.host.index() ?? 0;
      const from = shardsToPull(room, layout, self, this.#moves.arrivedAt(room));
      if (from.length === 0 || (await this.#pull(room, from, layout.epoch)))
        this.#pulls.delete(room);
    }
    if (this.#retryAt !== null && this.#retryAt <= now) await this.rebalance(now);
    if (this.#pulls.size > 0) return now + this.host.settings.retryMs;
    return this.#retryAt;
  }

  /**
   * Pulls `room` from each former owner, writes what they hand over (into the loaded room when
   * it already serves, else into storage as a restart would find it), and tells each to drop
   * its copy. True when every former owner answered.
   */
  async #pull(room: string, from: readonly number[], epoch: number): Promise<boolean> {
    const timeout = this.host.settings.handOffTimeoutMs;
    let complete = true;
    const handed: number[] = [];
    for (const index of from) {
      try {
        const answer = handOffSchema.parse(
          await this.host.within(
            this.host.peer(index).handOff(room, epoch, this.#vector(room)),
            timeout,
            `shard ${index}`,
          ),
        );
        if (!answer.held) {
          if (answer.reason === "owner") complete = false; // its table is behind: ask again
          continue;
        }
        // Where the room is now, not where it was when the pull began: a room opened meanwhile
        // must get the content in memory too, or a later compaction would write it away.
        const loaded = this.host.loaded(room);
        if (loaded) {
          if (carriesContent(answer.update))
            await this.host.run(loaded, loaded.applyHandOff(index, answer.update, this.host.now()));
        } else {
          if (carriesContent(answer.update)) this.host.storage.append(room, answer.update);
          this.host.presenceStore.write(room, answer.presence);
          const arriving = this.#arrivals.get(room) ?? new Set<number>();
          for (const member of answer.presence.upsert)
            if (member.status === "present") arriving.add(member.clientId);
          this.#arrivals.set(room, arriving);
        }
        handed.push(index);
      } catch {
        complete = false;
      }
    }
    if (complete) this.#moves.markArrived(room, epoch);
    const vector = this.#vector(room);
    // A copy not released now is offered again by its shard's retry.
    await Promise.allSettled(
      handed.map((index) =>
        this.host.within(this.host.peer(index).release(room, vector), timeout, "release"),
      ),
    );
    return complete;
  }

  /** The room's state vector here: the loaded document's, or the stored one's. */
  #vector(room: string): Uint8Array {
    const loaded = this.host.loaded(room);
    return loaded
      ? loaded.syncState().stateVector
      : storedStateVector(this.host.storage.load(room));
  }

  async #retryLater(now: number): Promise<void> {
    const at = now + this.host.settings.retryMs;
    if (this.#retryAt === null || at < this.#retryAt) this.#retryAt = at;
    await this.host.wake(this.#retryAt);
  }
}
