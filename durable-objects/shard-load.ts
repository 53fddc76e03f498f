import { type Region, regionSchema } from "../src/config/regions";
import { directoryStub } from "../src/http/directory-stub";
import { LoadReporter } from "../src/membership/load-reporter";
import { SqliteShardAddress } from "../src/storage/sqlite-shard-address";

type Figures = () => { loadedRooms: number; sockets: number };

/** How many rooms `busiestRooms` names. */
const BUSIEST_ROOMS = 5;

/**
 * A shard's load reports to its region's directory, which sums them into the region's entry
 * of the membership table: the shard's address (kept in SQLite, since a Durable Object does
 * not know its name), and the reporter's timing (src/membership/load-reporter.ts).
 */
export class ShardLoad {
  readonly #address: SqliteShardAddress;
  readonly #reporter: LoadReporter;
  /** Client frames since the last report, and when that was: the report carries their rate. */
  #messages = 0;
  /** The same, per room; the busiest of the last interval are kept for operators. */
  #roomMessages = new Map<string, number>();
  #busiest: Array<{ room: string; messagesPerSecond: number }> = [];
  #countingSince = Date.now();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly directories: Env["DIRECTORY"],
    intervalMs: number,
  ) {
    this.#address = new SqliteShardAddress(ctx.storage);
    this.#reporter = new LoadReporter(intervalMs);
    // Runtimes since March 2026 give a named object its name; older ones learn it from requests.
    const named = /^shard:([a-z]+):(\d{1,4})$/.exec(ctx.id.name ?? "");
    const region = regionSchema.safeParse(named?.[1]);
    if (named && region.success) this.#address.remember(region.data, Number(named[2]));
  }

  remember(region: Region, index: number): void {
    this.#address.remember(region, index);
  }

  /** The shard's region and index, once a request told it. */
  address(): { region: Region; index: number } | null {
    return this.#address.get();
  }

  /** The load changed: reports now, or returns when the owed report is due (for the alarm). */
  changed(now: number, figures: Figures): number | null {
    if (this.#reporter.changed(now)) this.#send(now, figures);
    return this.#reporter.nextDue();
  }

  /** A client frame arrived; every 256th counts as a change, so a busy shard's rate is reported. */
  message(room: string, now: number, figures: Figures): number | null {
    this.#messages++;
    this.#roomMessages.set(room, (this.#roomMessages.get(room) ?? 0) + 1);
    return this.#messages % 256 === 0 ? this.changed(now, figures) : null;
  }

  /** The rooms that received the most client frames over the last report interval (operators' view). */
  busiestRooms(): ReadonlyArray<{ room: string; messagesPerSecond: number }> {
    return this.#busiest;
  }

  /** On the alarm: sends an owed report that is due; returns when the next one is. */
  onAlarm(now: number, figures: Figures): number | null {
    if (this.#reporter.due(now)) this.#send(now, figures);
    return this.#reporter.nextDue();
  }

  #send(now: number, figures: Figures): void {
    const address = this.#address.get();
    if (!address) return;
    const { loadedRooms, sockets } = figures();
    const seconds = Math.max(1, now - this.#countingSince) / 1000;
    const messagesPerSecond = Math.round(this.#messages / seconds);
    this.#busiest = [...this.#roomMessages]
      .sort((a, b) => b[1] - a[1])
      .slice(0, BUSIEST_ROOMS)
      .map(([room, count]) => ({ room, messagesPerSecond: Math.round(count / seconds) }));
    // (The shard merges these with its most crowded rooms: src/rebalance/busiest-rooms.ts.)
    this.#roomMessages = new Map();
    this.#messages = 0;
    this.#countingSince = now;
    const directory = directoryStub(this.directories, address.region);
    // Best effort: a lost report is replaced by the next one.
    this.ctx.waitUntil(
      directory
        .reportLoad(address.region, address.index, {
          connections: sockets,
          rooms: loadedRooms,
          messagesPerSecond,
        })
        .catch(() => undefined),
    );
  }
}
