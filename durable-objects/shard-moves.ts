import type { HaloConfig } from "../src/config/config-schema";
import type { Region } from "../src/config/regions";
import type { RoomEffect, RoomReplica } from "../src/core/room-replica";
import { SHARD_HEADERS } from "../src/http/room-request";
import { type ShardStub, shardStub } from "../src/http/shard-stub";
import { CloseCode } from "../src/protocol/close-codes";
import { type MoveHost, ShardMover } from "../src/rebalance/shard-mover";
import { shardAt } from "../src/routing/shard-router";
import type { SqlitePresenceStore } from "../src/storage/sqlite-presence-store";
import { SqliteRoomMoves } from "../src/storage/sqlite-room-moves";
import type { SqliteRoomStorage } from "../src/storage/sqlite-room-storage";
import { withTimeout } from "../src/util/with-timeout";
import type { TableView } from "./region-tables";
import { closeSocket } from "./room-sockets";

/** What the shard lends the adapter. */
export interface ShardMovesDeps {
  ctx: DurableObjectState;
  env: Env;
  config: HaloConfig;
  address(): { region: Region; index: number } | null;
  table(now: number, fresh?: boolean): Promise<TableView>;
  storage: SqliteRoomStorage;
  presenceStore: SqlitePresenceStore;
  loaded(name: string): RoomReplica | undefined;
  unload(name: string): void;
  run(room: RoomReplica, effects: RoomEffect[]): Promise<void>;
  wake(at: number | null): Promise<void>;
}

/**
 * The shard's adapter for `ShardMover` (src/rebalance/shard-mover.ts): peers are the other
 * shards of its region over Durable Object RPC, records live in SQLite, sockets are the
 * hibernatable ones tagged by room, and timeouts are real.
 */
/** Where a room call goes when another shard of this region owns the room now. */
export interface RoomOwner {
  stub: ShardStub;
  index: number;
  /** The layout epoch that says so (the owner reads its table again if it is behind). */
  epoch: number;
}

export interface ShardMoves {
  mover: ShardMover;
  /** The room's owner when it is another shard (a resize moved the room), else null. */
  owner(room: string, epoch: number): Promise<RoomOwner | null>;
  /**
   * A WebSocket upgrade this shard must not serve: `421` when the region is drained or the
   * room is still not this shard's after one hop (the Worker routes again from a fresh table),
   * or the owner's answer after passing it on. Null: serve it here.
   */
  misrouted(
    request: Request,
    upgrade: { room: string; region: Region; epoch: number; forwarded: boolean },
  ): Promise<Response | null>;
}

export function shardMover(deps: ShardMovesDeps): ShardMoves {
  const region = (): Region => {
    const address = deps.address();
    if (!address) throw new Error("shard address unknown");
    return address.region;
  };
  const stub = (index: number) => shardStub(deps.env.SHARD, shardAt(region(), index));
  const host: MoveHost = {
    index: () => deps.address()?.index,
    async table(now, fresh) {
      const table = await deps.table(now, fresh);
      const own = region();
      return {
        layout: table.layouts(own) ?? {
          count: deps.config.shardCount(own),
          epoch: 0,
          previous: [],
        },
        drained: table.status.get(own) === "left",
      };
    },
    peer: (index) => ({
      handOff: (room, epoch, vector) => stub(index).handOff(region(), index, room, epoch, vector),
      release: (room, vector) => stub(index).release(region(), index, room, vector),
      adopt: (room, from) => stub(index).adopt(region(), index, room, from),
    }),
    records: new SqliteRoomMoves(deps.ctx.storage),
    storage: deps.storage,
    presenceStore: deps.presenceStore,
    loaded: deps.loaded,
    unload: deps.unload,
    run: deps.run,
    closeSockets(room, reason) {
      const sockets = room === null ? deps.ctx.getWebSockets() : deps.ctx.getWebSockets(room);
      for (const ws of sockets) closeSocket(ws, CloseCode.Moved, reason);
      return sockets.length;
    },
    wake: deps.wake,
    within: withTimeout,
    now: () => Date.now(),
    settings: deps.config.rebalance,
  };
  const mover = new ShardMover(host);
  const owner = async (room: string, epoch: number): Promise<RoomOwner | null> => {
    const index = await mover.elsewhere(room, Date.now(), epoch);
    if (index === null) return null;
    return { stub: stub(index), index, epoch: (await mover.layout(Date.now())).epoch };
  };
  return {
    mover,
    owner,
    async misrouted(request, { room, region, epoch, forwarded }) {
      const table = await deps.table(Date.now());
      const elsewhere = await owner(room, epoch);
      if (table.status.get(region) === "left" || (elsewhere && forwarded)) {
        return Response.json(
          { error: { code: "misrouted", message: `room ${room} is not served here now` } },
          { status: 421 },
        );
      }
      if (!elsewhere) return null;
      // Routed by an older layout: the room's owner serves it, one hop on.
      const onward = new Request(request);
      onward.headers.set(SHARD_HEADERS.shard, String(elsewhere.index));
      onward.headers.set(SHARD_HEADERS.epoch, String(elsewhere.epoch));
      onward.headers.set(SHARD_HEADERS.forwarded, "1");
      return elsewhere.stub.fetch(onward);
    },
  };
}
