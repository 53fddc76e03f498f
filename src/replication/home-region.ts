import { rendezvousRank } from "../routing/rendezvous";

/**
 * The room's home and backup: the two best rendezvous scores among the regions that may serve
 * it. Every region with the same table computes the same pair; a region leaving the set moves
 * only the rooms it held, each to its runner-up (DESIGN.md, "Routing").
 */
export function homeAndBackup(
  room: string,
  candidates: readonly string[],
): { home: string | null; backup: string | null } {
  const [home = null, backup = null] = rendezvousRank(room, candidates);
  return { home, backup };
}
