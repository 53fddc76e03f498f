/**
 * One row of the region-membership table and its merge rule (DESIGN.md, "Region membership").
 *
 * The merge is a join: commutative, associative and idempotent, so tables that have seen the
 * same entries are equal whatever order, duplication or delay the gossip had. Ordering:
 * incarnation first (only the region itself raises it), then status rank (`left` > `dead` >
 * `suspect` > `alive`, so at one incarnation an accusation beats the accused region's own
 * heartbeats until it refutes), then heartbeat. At an equal version the accusers are united:
 * that is how independent reports of a suspicion accumulate.
 *
 * Region ids are plain strings here: the core runs over any names (the simulator and the
 * benchmark use 64 of them); the RPC boundary restricts them to location hints.
 */

export const MEMBER_STATUSES = ["alive", "suspect", "dead", "left"] as const;
export type MemberStatus = (typeof MEMBER_STATUSES)[number];

const RANK: Readonly<Record<MemberStatus, number>> = { alive: 0, suspect: 1, dead: 2, left: 3 };

export function statusRank(status: MemberStatus): number {
  return RANK[status];
}

/** Load figures a region reports about itself (summed over its shards). */
export interface RegionLoad {
  connections: number;
  rooms: number;
}

/** One shard's figures as it reports them to its region's directory. */
export interface ShardLoadReport extends RegionLoad {
  /** Frames received from clients per second, over the shard's last report interval. */
  messagesPerSecond: number;
}

/** A shard over its load target, as the region's entry names it (DESIGN.md: operators act on it). */
export interface HotShard extends ShardLoadReport {
  shard: number;
}

/** How many earlier shard counts an entry keeps: a room may still sit on a shard of any of them. */
export const SHARD_HISTORY = 4;

export interface RegionEntry {
  region: string;
  status: MemberStatus;
  /** Raised only by the region itself: to refute a suspicion, after a restart, on drain/undrain. */
  incarnation: number;
  /** Raised by the region itself every gossip round and on every change it makes to its entry. */
  heartbeat: number;
  /**
   * The heartbeat at which the region last changed anything but its heartbeat. A peer holding
   * this heartbeat or a later one has the current content, and gets a compact beat instead.
   */
  contentAt: number;
  shards: number;
  /**
   * Raised by the region itself with every change of `shards` (an operator's resize): every
   * Worker and shard that holds this epoch routes the region's rooms the same way.
   */
  shardEpoch: number;
  /** The counts before the current one, newest first (at most SHARD_HISTORY): where moved rooms may still be. */
  previousShards: number[];
  load: RegionLoad;
  /** Shards over the region's load target, hottest first (empty when none is). */
  hotShards: HotShard[];
  /** When this entry's status was set, on the clock of the region that set it (ms since epoch). */
  changedAt: number;
  /** Regions that independently reported this suspicion or death; empty for `alive` and `left`. */
  accusers: string[];
}

/**
 * What a digest says about one entry: enough to tell who has the newer version, and (by a
 * fingerprint of the accuser set) whether two equal versions hold different accusers.
 */
export type DigestItem = readonly [
  region: string,
  incarnation: number,
  rank: number,
  heartbeat: number,
  accusers: number,
  accusedBy: number,
];

/** A heartbeat without the rest of the entry, for a peer that already holds the entry's content. */
export type Beat = readonly [region: string, incarnation: number, heartbeat: number];

/** What a peer holds of a region it does not know at all, in a `want` list. */
export const UNKNOWN_HEARTBEAT = -1;

export function digestOf(entry: RegionEntry): DigestItem {
  return [
    entry.region,
    entry.incarnation,
    RANK[entry.status],
    entry.heartbeat,
    entry.accusers.length,
    fingerprint(entry.accusers),
  ];
}

/** FNV-1a over the sorted accuser names: equal sets, equal prints (0 for none). */
function fingerprint(accusers: readonly string[]): number {
  if (accusers.length === 0) return 0;
  let h = 0x811c9dc5;
  const text = accusers.join(",");
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * True when a holder of `theirs` would gain from `mine`: it is older, or as new but with a
 * different set of accusers (two regions that each suspected a third on their own hold
 * equal-sized sets, and must still unite them, or the suspicion waits its longest).
 */
export function gainsFrom(theirs: DigestItem, mine: DigestItem): boolean {
  const order = compareVersions(mine, theirs);
  return order > 0 || (order === 0 && mine[5] !== theirs[5]);
}

/**
 * Compares two versions (digest items without the region and the fingerprint); > 0 when `a`
 * is newer. Sets of accusers compare by size; see `gainsFrom` for equal sizes.
 */
export function compareVersions(a: DigestItem, b: DigestItem): number {
  for (let i = 1; i < 5; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * What `entry` needs to send to a peer whose version of it is `theirs`: nothing (the peer is
 * as new), a beat (the peer has the same life, status and content, only an older heartbeat),
 * or the whole entry.
 */
export function deltaFor(
  entry: RegionEntry,
  theirs: DigestItem | undefined,
): "none" | "beat" | "full" {
  if (!theirs) return "full";
  if (!gainsFrom(theirs, digestOf(entry))) return "none";
  const ownWord = entry.status === "alive" || entry.status === "left";
  const sameContent =
    theirs[1] === entry.incarnation &&
    theirs[2] === RANK[entry.status] &&
    theirs[4] === entry.accusers.length &&
    theirs[3] >= entry.contentAt;
  return ownWord && sameContent ? "beat" : "full";
}

/** The join of two entries about the same region. Returns `local` itself when nothing changes. */
export function mergeEntry(local: RegionEntry, incoming: RegionEntry): RegionEntry {
  const order =
    incoming.incarnation - local.incarnation || RANK[incoming.status] - RANK[local.status];
  if (order < 0) return local;
  if (order > 0) return incoming;
  // Same incarnation and status: the owner's later heartbeat carries the later figures.
  const base = incoming.heartbeat > local.heartbeat ? incoming : local;
  const accusers = unite(local.accusers, incoming.accusers);
  const changedAt = Math.min(local.changedAt, incoming.changedAt);
  if (base === local && accusers === local.accusers && changedAt === local.changedAt) return local;
  return { ...base, accusers, changedAt };
}

/** Sorted union; returns `a` itself when `b` adds nothing. */
function unite(a: string[], b: string[]): string[] {
  if (b.every((x) => a.includes(x))) return a;
  return [...new Set([...a, ...b])].sort();
}
