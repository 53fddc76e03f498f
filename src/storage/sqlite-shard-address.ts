import { type Region, regionSchema } from "../config/regions";
import type { SqliteHost } from "./sqlite-room-storage";

/**
 * A shard's own address (region and index), recorded from the first request the Worker
 * forwards: a Durable Object does not know its name, and after hibernation a shard must still
 * know which directory to report to.
 */
export class SqliteShardAddress {
  #cached: { region: Region; index: number } | null | undefined;

  constructor(private readonly host: SqliteHost) {
    host.sql.exec(
      "CREATE TABLE IF NOT EXISTS shard_address (id INTEGER PRIMARY KEY CHECK (id = 0), region TEXT NOT NULL, idx INTEGER NOT NULL)",
    );
  }

  get(): { region: Region; index: number } | null {
    if (this.#cached !== undefined) return this.#cached;
    const row = this.host.sql
      .exec<{ region: string; idx: number }>("SELECT region, idx FROM shard_address")
      .toArray()[0];
    const region = regionSchema.safeParse(row?.region);
    this.#cached = row && region.success ? { region: region.data, index: row.idx } : null;
    return this.#cached;
  }

  remember(region: Region, index: number): void {
    const known = this.get();
    if (known && known.region === region && known.index === index) return;
    this.host.sql.exec(
      "INSERT INTO shard_address (id, region, idx) VALUES (0, ?, ?) ON CONFLICT (id) DO UPDATE SET region = excluded.region, idx = excluded.idx",
      region,
      index,
    );
    this.#cached = { region, index };
  }
}
