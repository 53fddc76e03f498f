/**
 * Rendezvous (highest random weight) hashing: every node gets a pseudo-random
 * score for the key and nodes are ranked by score. Unlike jump hash it works
 * on named, unordered node sets where any member may disappear — removing a
 * node only moves the keys it held (each to its own runner-up), adding one
 * takes about 1/(N+1) of the keys — and the ranking gives a natural ordered
 * list of fallbacks (home region, then backup region, ...). Cost is O(N) per
 * lookup, which is fine for a handful of regions.
 *
 * Score: MurmurHash3 x86_32 over the 16 bytes
 * `[node.hi, node.lo, key.hi, key.lo]` (little-endian uint32 words of the
 * {@link hash64} of each name), computed in two lanes with different seeds and
 * packed into a 53-bit integer, so ties are practically impossible; should one
 * happen anyway, the node whose name sorts first wins.
 */

import { fmix32, hash64, mixH, mixK } from "./hash";

const SEED_A = 0x2545f491;
const SEED_B = 0x6c8e9cf5;
/** Bytes in the scored message (four uint32 words), mixed into the finaliser. */
const MSG_LEN = 16;

export interface RendezvousSet {
  readonly nodes: readonly string[];
  /** Best node for the key. Throws RangeError if the set is empty. */
  pick(key: string): string;
  /** Index into `nodes` of the best node, for callers keeping parallel arrays. Throws like pick. */
  pickIndex(key: string): number;
  /** All nodes, best first. */
  rank(key: string): string[];
}

/**
 * Finishes both lanes from a node's precomputed lane states and the key's two
 * premixed words; 53-bit unsigned score.
 */
function finish(stateA: number, stateB: number, k0: number, k1: number): number {
  const a = fmix32(mixH(mixH(stateA, k0), k1) ^ MSG_LEN);
  const b = fmix32(mixH(mixH(stateB, k0), k1) ^ MSG_LEN);
  return a * 0x200000 + (b >>> 11);
}

/**
 * Score of `node` for `key`: an integer in [0, 2^53). Exposed so callers and
 * tests can reason about rankings; {@link rendezvousRank} orders by it.
 */
export function rendezvousScore(key: string, node: string): number {
  const n = hash64(node);
  const n0 = mixK(n.hi);
  const n1 = mixK(n.lo);
  const k = hash64(key);
  return finish(mixH(mixH(SEED_A, n0), n1), mixH(mixH(SEED_B, n0), n1), mixK(k.hi), mixK(k.lo));
}

/**
 * Precomputes per-node hash state so each lookup costs one key hash plus a few
 * multiplies per node. Use this on hot paths; the free functions re-hash every
 * node name per call. Throws RangeError on duplicate node names, which would
 * make "the node that held a key" ambiguous.
 */
export function prepareRendezvous(nodes: readonly string[]): RendezvousSet {
  const list = [...nodes];
  if (new Set(list).size !== list.length) {
    throw new RangeError("rendezvous node names must be unique");
  }
  const count = list.length;
  // Lane states after absorbing the node's two words: the node-only prefix of the message.
  const statesA = new Int32Array(count);
  const statesB = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const n = hash64(list[i]!);
    const n0 = mixK(n.hi);
    const n1 = mixK(n.lo);
    statesA[i] = mixH(mixH(SEED_A, n0), n1);
    statesB[i] = mixH(mixH(SEED_B, n0), n1);
  }

  const pickIndex = (key: string): number => {
    if (count === 0) throw new RangeError("rendezvous: no nodes to pick from");
    const h = hash64(key);
    const k0 = mixK(h.hi);
    const k1 = mixK(h.lo);
    let best = 0;
    let bestScore = -1;
    for (let i = 0; i < count; i++) {
      const s = finish(statesA[i]!, statesB[i]!, k0, k1);
      if (s > bestScore || (s === bestScore && list[i]! < list[best]!)) {
        best = i;
        bestScore = s;
      }
    }
    return best;
  };

  return {
    nodes: list,
    pickIndex,
    pick: (key: string): string => list[pickIndex(key)]!,
    rank(key: string): string[] {
      const h = hash64(key);
      const k0 = mixK(h.hi);
      const k1 = mixK(h.lo);
      const scored: { node: string; score: number }[] = [];
      for (let i = 0; i < count; i++) {
        scored.push({ node: list[i]!, score: finish(statesA[i]!, statesB[i]!, k0, k1) });
      }
      scored.sort((x, y) =>
        x.score !== y.score ? y.score - x.score : x.node < y.node ? -1 : x.node > y.node ? 1 : 0,
      );
      return scored.map((s) => s.node);
    },
  };
}

/** All nodes ordered best first for `key` (ties by node name, ascending). */
export function rendezvousRank(key: string, nodes: readonly string[]): string[] {
  return prepareRendezvous(nodes).rank(key);
}

/** The best node for `key`. Throws RangeError when `nodes` is empty. */
export function rendezvousPick(key: string, nodes: readonly string[]): string {
  if (nodes.length === 0) throw new RangeError("rendezvous: no nodes to pick from");
  return prepareRendezvous(nodes).pick(key);
}
