import type { HaloConfig } from "../src/config/config-schema";
import type { Region } from "../src/config/regions";
import type { RoomEffect, RoomReplica } from "../src/core/room-replica";
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
export function shardMover(deps: ShardMovesDeps): {
  mover: ShardMover;
  stub(index: number): ShardStub;
} {
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
  return { mover: new ShardMover(host), stub };
}
