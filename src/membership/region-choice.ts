import type { Region } from "../config/regions";
import type { MemberStatus } from "./region-entry";

/**
 * Where a new client goes (DESIGN.md, "Routing"): the nearest region that the membership
 * table does not know to be down or drained. A configured region the table has not heard of
 * yet counts as up: routing fails open, so a directory that is slow to learn, or no table at
 * all, never turns clients away. Only when every region is known to be down does a suspect
 * one serve, and then any.
 */
export function chooseRegion(
  nearestFirst: readonly Region[],
  statusOf: (region: Region) => MemberStatus | undefined,
): Region {
  const first = nearestFirst[0];
  if (first === undefined) throw new RangeError("no configured region to choose from");
  const up = nearestFirst.find((region) => {
    const status = statusOf(region);
    return status === undefined || status === "alive";
  });
  return up ?? nearestFirst.find((region) => statusOf(region) === "suspect") ?? first;
}
