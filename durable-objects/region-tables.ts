import type { HaloConfig } from "../src/config/config-schema";
import type { Region } from "../src/config/regions";
import { directoryStub } from "../src/http/directory-stub";
import { type FaultPlan, NO_FAULTS } from "../src/membership/fault-plan";
import { membershipViewSchema } from "../src/membership/membership-schema";
import type { MemberStatus } from "../src/membership/region-entry";
import { type LayoutLookup, layoutsFromEntries } from "../src/routing/shard-layout";
import { withTimeout } from "../src/util/with-timeout";

/** The membership table as replication needs it, read from this region's directory. */
export interface TableView {
  /** Regions that may serve (neither dead nor drained): home and backup come from these. */
  candidates: Region[];
  /** Regions declared dead: their members leave with `region_lost`. */
  dead: Set<Region>;
  /** The injected faults of a local run (none unless `membership.faultInjection`). */
  faults: FaultPlan;
  /** Each region's shard layout as the table holds it (configuration's where it does not). */
  layouts: LayoutLookup;
  /** Each region's status, where the table knows it (`left`: drained). */
  status: ReadonlyMap<Region, MemberStatus>;
  fetchedAt: number;
}

/**
 * A shard's copy of its region's membership table (and fault plan), asked of the region's
 * directory at most once per `membership.cacheMs`. When the directory does not answer, the
 * last verdicts stand and every configured region may serve: replication routes around a
 * directory failure, it never waits on one.
 */
export class RegionTables {
  private table: TableView | null = null;

  constructor(
    private readonly env: Env,
    private readonly config: HaloConfig,
    private readonly region: () => Region | undefined,
  ) {}

  /** The regions declared dead in the last table read. */
  lastDead(): Set<Region> {
    return this.table?.dead ?? new Set();
  }

  /** This region's table, reused for `membership.cacheMs` (`fresh`: read it now). */
  async current(now: number, fresh = false): Promise<TableView> {
    const cached = this.table;
    const maxAge = fresh ? 0 : this.config.membership.cacheMs;
    if (cached && now - cached.fetchedAt <= maxAge) return cached;
    const region = this.region();
    const { config, env } = this;
    const configured = [...config.regions];
    let next: TableView = {
      candidates: configured,
      dead: cached?.dead ?? new Set(),
      faults: cached?.faults ?? NO_FAULTS,
      layouts: cached?.layouts ?? (() => undefined),
      status: cached?.status ?? new Map(),
      fetchedAt: now,
    };
    if (region !== undefined) {
      try {
        const directory = directoryStub(env.DIRECTORY, region);
        const timeout = config.membership.ackTimeoutMs;
        const [view, faults] = await Promise.all([
          withTimeout(directory.view(region), timeout, `directory ${region}`),
          config.membership.faultInjection
            ? withTimeout(directory.getFaults(region), timeout, `directory ${region}`)
            : Promise.resolve(NO_FAULTS),
        ]);
        const entries = membershipViewSchema.parse(view).entries;
        const status = new Map(entries.map((entry) => [entry.region, entry.status]));
        next = {
          // A region the table does not know yet may serve: it is configured and joining.
          candidates: configured.filter((r) => {
            const s = status.get(r);
            return s === undefined || s === "alive" || s === "suspect";
          }),
          dead: new Set(configured.filter((r) => status.get(r) === "dead")),
          faults,
          layouts: layoutsFromEntries(entries),
          status,
          fetchedAt: now,
        };
      } catch {
        // No table: keep the last verdicts, serve from every configured region.
      }
    }
    this.table = next;
    return next;
  }
}
