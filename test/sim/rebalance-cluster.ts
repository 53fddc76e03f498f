import * as Y from "yjs";
import type { PresenceWrite } from "../../src/presence/presence-store";
import {
  type MoveHost,
  type MovePeer,
  type MoveRecords,
  ShardMover,
} from "../../src/rebalance/shard-mover";
import { ownerIndex, type ShardLayout } from "../../src/routing/shard-layout";
import type { StoredRoom } from "../../src/storage/room-storage";
import type { SimRandom } from "./random";

/**
 * One region's shards moving rooms under random resizes, on virtual time: every shard runs the
 * real `ShardMover` (src/rebalance/shard-mover.ts) over in-memory stores; calls between shards
 * cross a network that delays, loses requests and loses replies; shards crash and restart
 * with their storage (and their alarm, which is durable) kept and their memory lost; Workers
 * and shards read the layout with a lag, as their cached tables do. Writers are stock clients:
 * an edit not acknowledged is sent again, to wherever the writer's table says.
 */

export interface RebalanceFaults {
  requestLoss: number;
  replyLoss: number;
  maxDelayMs: number;
  crashChance: number;
  /** How far behind the directory a cached table may be (ms). */
  tableLagMs: number;
}

const SETTINGS = { handOffTimeoutMs: 200, retryMs: 500 };

/** A crashed shard's work in flight must not touch storage: its writes fail like its memory. */
class Crashed extends Error {}

class ShardState {
  readonly docs = new Map<string, Uint8Array[]>();
  readonly out = new Map<string, number>();
  readonly arrived = new Map<string, number>();
  rebalanced = 0;
  generation = 0;
  up = true;
  alarmAt: number | null = null;
  /** The shard's cached table: read from the directory when older than the lag (memory). */
  cached: { layout: ShardLayout; at: number } | null = null;
  mover!: ShardMover;
}

export class RebalanceCluster {
  readonly shards: ShardState[] = [];
  /** The directory's layouts, oldest first, with the time each took effect. */
  readonly layouts: Array<{ at: number; layout: ShardLayout }>;
  faults: RebalanceFaults;
  #now = 0;
  #seq = 0;
  readonly #timers: Array<{ at: number; seq: number; run: () => void }> = [];

  constructor(
    private readonly random: SimRandom,
    initialShards: number,
    faults: RebalanceFaults,
  ) {
    this.faults = faults;
    this.layouts = [{ at: 0, layout: { count: initialShards, epoch: 0, previous: [] } }];
    for (let i = 0; i < 8; i++) this.shards.push(this.#boot(new ShardState(), i));
  }

  get now(): number {
    return this.#now;
  }

  get layout(): ShardLayout {
    return (this.layouts.at(-1) as { layout: ShardLayout }).layout;
  }

  /** The layout as a cached table holding it for up to `tableLagMs` sees it. */
  staleLayout(): ShardLayout {
    const asOf = this.#now - this.random.between(0, this.faults.tableLagMs);
    let seen = this.layouts[0]?.layout as ShardLayout;
    for (const entry of this.layouts) if (entry.at <= asOf) seen = entry.layout;
    return seen;
  }

  /** An operator's resize, then its call to every shard of the old and new layouts (each may be lost). */
  resize(count: number): void {
    const current = this.layout;
    if (count === current.count) return;
    const layout = {
      count,
      epoch: current.epoch + 1,
      previous: [current.count, ...current.previous].slice(0, 4),
    };
    this.layouts.push({ at: this.#now, layout });
    this.kick();
  }

  /** The admin endpoint's call to every shard that may hold rooms (repeatable). */
  kick(): void {
    const { count, previous } = this.layout;
    for (let i = 0; i < Math.max(count, ...previous); i++) {
      void this.#call(i, (shard) => shard.mover.rebalance(this.#now)).catch(() => undefined);
    }
  }

  /** A writer's edit, sent to the shard its table names; resolves true once a shard stored it. */
  async write(room: string, update: Uint8Array): Promise<boolean> {
    const layout = this.staleLayout();
    const index = ownerIndex(room, layout);
    try {
      return await this.#within(
        this.#call(index, (shard) => this.#serve(shard, room, update, layout.epoch, false)),
        1_000,
      );
    } catch {
      return false;
    }
  }

  crash(index: number): void {
    const shard = this.shards[index] as ShardState;
    shard.up = false;
    shard.generation++;
    shard.cached = null;
    this.after(this.random.between(50, 1_000), () => {
      shard.up = true;
      this.#boot(shard, index);
      if (shard.alarmAt !== null) this.#armAlarm(shard, shard.alarmAt);
    });
  }

  after(ms: number, run: () => void): void {
    this.#timers.push({ at: this.#now + ms, seq: this.#seq++, run });
  }

  /** Runs virtual time to `until`, letting every promise settle after each event. */
  async runUntil(until: number): Promise<void> {
    for (;;) {
      let next = -1;
      for (let i = 0; i < this.#timers.length; i++) {
        const t = this.#timers[i] as { at: number; seq: number };
        const best = this.#timers[next];
        if (t.at <= until && (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)))
          next = i;
      }
      if (next < 0) break;
      const [task] = this.#timers.splice(next, 1);
      if (!task) break;
      this.#now = Math.max(this.#now, task.at);
      task.run();
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.#now = Math.max(this.#now, until);
  }

  /** The text a shard's stored copy of `room` holds, or null when it holds none. */
  storedText(index: number, room: string): string | null {
    const parts = this.shards[index]?.docs.get(room);
    if (!parts || parts.length === 0) return null;
    const doc = new Y.Doc();
    for (const part of parts) Y.applyUpdate(doc, part);
    return doc.getText("t").toString();
  }

  /** A shard as a serving shard runs a client's edit: pass it on, refuse it, or pull then store. */
  async #serve(
    shard: ShardState,
    room: string,
    update: Uint8Array,
    epoch: number,
    forwarded: boolean,
  ): Promise<boolean> {
    const mover = shard.mover;
    const owner = await mover.elsewhere(room, this.#now, epoch);
    if (owner !== null) {
      if (forwarded) return false;
      return this.#call(owner, (next) => this.#serve(next, room, update, this.layout.epoch, true));
    }
    // As the shard's room(): the pull (which clears a stale mark of a room come back) first.
    await mover.beforeOpen(room, this.#now);
    if (mover.movedOut(room)) return false;
    this.#docs(shard, shard.generation).append(room, update);
    return true;
  }

  /** A call to shard `index` over the network: delayed, maybe lost either way, refused when down. */
  #call<T>(index: number, work: (shard: ShardState) => Promise<T>): Promise<T> {
    const { requestLoss, replyLoss, maxDelayMs } = this.faults;
    return new Promise<T>((resolve, reject) => {
      if (this.random.chance(requestLoss)) return; // never arrives: the caller's timeout fires
      this.after(this.random.between(0, maxDelayMs), () => {
        const shard = this.shards[index] as ShardState;
        if (!shard.up) {
          reject(new Crashed(`shard ${index} is down`));
          return;
        }
        work(shard).then(
          (value) => {
            if (this.random.chance(replyLoss)) return;
            this.after(this.random.between(0, maxDelayMs), () => resolve(value));
          },
          (error) => this.after(this.random.between(0, maxDelayMs), () => reject(error)),
        );
      });
    });
  }

  #within<T>(promise: Promise<T>, ms: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      this.after(ms, () => {
        if (!done) reject(new Error("timed out"));
        done = true;
      });
      promise.then(
        (value) => {
          if (!done) resolve(value);
          done = true;
        },
        (error) => {
          if (!done) reject(error);
          done = true;
        },
      );
    });
  }

  #armAlarm(shard: ShardState, at: number): void {
    const generation = shard.generation;
    this.after(Math.max(0, at - this.#now), async () => {
      if (shard.generation !== generation || !shard.up || shard.alarmAt !== at) return;
      shard.alarmAt = null;
      const next = await shard.mover.onAlarm(this.#now).catch(() => this.#now + 500);
      if (next !== null && shard.generation === generation) this.#wake(shard, next);
    });
  }

  #wake(shard: ShardState, at: number | null): void {
    if (at === null || (shard.alarmAt !== null && shard.alarmAt <= at)) return;
    shard.alarmAt = at;
    this.#armAlarm(shard, at);
  }

  /** Stores that fail once the shard that opened them has crashed. */
  #docs(shard: ShardState, generation: number) {
    const alive = () => {
      if (shard.generation !== generation || !shard.up) throw new Crashed("crashed");
    };
    return {
      load: (room: string): StoredRoom => ({
        snapshot: null,
        log: [...(shard.docs.get(room) ?? [])],
      }),
      append: (room: string, update: Uint8Array) => {
        alive();
        shard.docs.set(room, [...(shard.docs.get(room) ?? []), update]);
      },
      replaceWithSnapshot: (room: string, snapshot: Uint8Array) => {
        alive();
        shard.docs.set(room, [snapshot]);
      },
      rooms: () => [...shard.docs.keys()],
      drop: (room: string) => {
        alive();
        shard.docs.delete(room);
      },
    };
  }

  #boot(shard: ShardState, index: number): ShardState {
    const generation = shard.generation;
    const alive = () => {
      if (shard.generation !== generation || !shard.up) throw new Crashed("crashed");
    };
    const records: MoveRecords = {
      movedOutAt: (room) => shard.out.get(room),
      movedOut: () => [...shard.out.keys()],
      markOut: (room, epoch) => {
        alive();
        shard.out.set(room, epoch);
      },
      clearOut: (room) => {
        alive();
        shard.out.delete(room);
      },
      arrivedAt: (room) => shard.arrived.get(room) ?? 0,
      markArrived: (room, epoch) => {
        alive();
        shard.arrived.set(room, epoch);
      },
      rebalancedAt: () => shard.rebalanced,
      markRebalanced: (epoch) => {
        alive();
        shard.rebalanced = Math.max(shard.rebalanced, epoch);
      },
    };
    const peer = (target: number): MovePeer => ({
      handOff: (room, epoch, vector) =>
        this.#call(target, (s) => s.mover.handOff(room, epoch, vector)),
      release: (room, vector) => this.#call(target, async (s) => s.mover.release(room, vector)),
      adopt: (room, from) => this.#call(target, (s) => s.mover.adopt(room, from, this.#now)),
    });
    // No presence in this model: the workerd tests carry members across a move.
    const noPresence = {
      rooms: () => [],
      exportRoom: (): PresenceWrite => ({
        upsert: [],
        remove: [],
        seq: 0,
        history: [],
        outbox: [],
      }),
      write: () => undefined,
      drop: () => undefined,
    };
    const host: MoveHost = {
      index: () => index,
      table: async (now, fresh) => {
        const cached = shard.cached;
        if (fresh || !cached || now - cached.at > this.faults.tableLagMs)
          shard.cached = { layout: this.layout, at: now };
        return { layout: (shard.cached as { layout: ShardLayout }).layout, drained: false };
      },
      peer,
      records,
      storage: this.#docs(shard, generation),
      presenceStore: noPresence,
      loaded: () => undefined,
      unload: () => undefined,
      run: async () => undefined,
      closeSockets: () => 0,
      wake: async (at) => this.#wake(shard, at),
      within: (promise, ms) => this.#within(promise, ms),
      now: () => this.#now,
      settings: SETTINGS,
    };
    shard.mover = new ShardMover(host);
    return shard;
  }
}
