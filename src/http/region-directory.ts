import type { HaloConfig } from "../config/config-schema";
import type { Region } from "../config/regions";
import { membershipViewSchema, type RegionTable } from "../membership/membership-schema";
import { chooseRegion } from "../membership/region-choice";
import { withTimeout } from "../util/with-timeout";
import { directoryStub } from "./directory-stub";

interface Cached {
  view: RegionTable;
  fetchedAt: number;
}

/** Per isolate (the env object lives as long as it), the last table fetched from each directory. */
const caches = new WeakMap<object, Map<Region, Cached>>();

/**
 * The membership table as the client's nearest directory sees it, reused for
 * `membership.cacheMs`. A directory that does not answer within `ackTimeoutMs` is skipped for
 * the next nearest; with none answering the result is undefined and routing falls back to
 * configuration (DESIGN.md: routing routes around failures, it never depends on one).
 */
export async function membershipView(
  env: Pick<Env, "DIRECTORY">,
  config: HaloConfig,
  nearestFirst: readonly Region[],
  now: number,
  maxAgeMs = config.membership.cacheMs,
): Promise<RegionTable | undefined> {
  let cache = caches.get(env);
  if (!cache) {
    cache = new Map();
    caches.set(env, cache);
  }
  for (const region of nearestFirst.slice(0, 2)) {
    const hit = cache.get(region);
    if (hit && now - hit.fetchedAt <= maxAgeMs) return hit.view;
    try {
      // Parsed like any answer from another object: the Worker trusts shapes it has checked.
      const view = membershipViewSchema.parse(
        await withTimeout(
          directoryStub(env.DIRECTORY, region).view(region),
          config.membership.ackTimeoutMs,
          `directory ${region}`,
        ),
      );
      cache.set(region, { view, fetchedAt: now });
      return view;
    } catch {
      cache.delete(region);
    }
  }
  return undefined;
}

/** The region a new client is routed to (the nearest one the table does not know to be down or drained), and the table that said so. */
export async function routeClient(
  env: Pick<Env, "DIRECTORY">,
  config: HaloConfig,
  nearestFirst: readonly Region[],
  now: number,
  maxAgeMs?: number,
): Promise<{ region: Region; view: RegionTable | undefined }> {
  const view = await membershipView(env, config, nearestFirst, now, maxAgeMs);
  const statuses = new Map(view?.entries.map((entry) => [entry.region, entry.status]));
  return { region: chooseRegion(nearestFirst, (region) => statuses.get(region)), view };
}
