import { describe, expect, it } from "vitest";
import {
  HASH64_SEED_HI,
  HASH64_SEED_LO,
  hash32,
  hash64,
  murmur3x86_32,
} from "../../src/routing/hash";
import { jumpHash, jumpHashBigInt, MAX_BUCKETS, shardIndexFor } from "../../src/routing/jump-hash";
import {
  prepareRendezvous,
  rendezvousPick,
  rendezvousRank,
  rendezvousScore,
} from "../../src/routing/rendezvous";

// Deterministic inputs: every statistical bound below is checked against the
// same fixed data on every run, so a test can never flake — it either always
// passes or always fails. Bounds are set at ~5 standard deviations of the
// ideal (truly random) behaviour: loose enough that a correct implementation
// passes with overwhelming odds for whatever fixed seed was chosen, tight
// enough that the classic bugs (mod-N routing, a broken multiply, a biased
// hash) land hundreds of sigmas outside.

function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function roomNames(count: number, seed: number): string[] {
  const next = prng(seed);
  return Array.from({ length: count }, (_, i) => `room-${i}-${next().toString(36)}`);
}

const ROOMS = roomNames(200_000, 42);
const ROOM_KEYS = ROOMS.map((r) => hash64(r));

function toBigInt(key: { hi: number; lo: number }): bigint {
  return (BigInt(key.hi >>> 0) << 32n) | BigInt(key.lo >>> 0);
}

/** |observed - expected| <= 5 sigma for a Binomial(n, p) count. */
function expectBinomial(observed: number, n: number, p: number): void {
  const mean = n * p;
  const sigma = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(observed - mean)).toBeLessThanOrEqual(5 * sigma);
}

function chiSquare(counts: ArrayLike<number>, total: number): number {
  const expected = total / counts.length;
  let chi = 0;
  for (let i = 0; i < counts.length; i++) chi += (counts[i]! - expected) ** 2 / expected;
  return chi;
}

const utf8 = new TextEncoder();

describe("hash32 (MurmurHash3 x86_32 over UTF-8)", () => {
  it("matches published MurmurHash3 x86_32 test vectors", () => {
    // Widely published reference values (SMHasher-derived test suites).
    const vectors: [string, number, number][] = [
      ["", 0, 0x00000000],
      ["", 1, 0x514e28b7],
      ["", 0xffffffff, 0x81f16f39],
      ["\0\0\0\0", 0, 0x2362f9de],
      ["a", 0, 0x3c2569b2],
      ["abc", 0, 0xb3dd93fa],
      ["hello", 0, 0x248bfa47],
      ["test", 0, 0xba6bd213],
      ["test", 0x9747b28c, 0x704b81dc],
      ["Hello, world!", 0, 0xc0363e43],
      ["Hello, world!", 0x9747b28c, 0x24884cba],
      ["The quick brown fox jumps over the lazy dog", 0, 0x2e4ff723],
      ["The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd],
    ];
    for (const [input, seed, want] of vectors) expect(hash32(input, seed)).toBe(want);
  });

  it("matches published byte-level vectors", () => {
    const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
    expect(murmur3x86_32(hex("00"), 0)).toBe(0x514e28b7);
    expect(murmur3x86_32(hex("ff"), 0)).toBe(0xfd6cf10d);
    expect(murmur3x86_32(hex("0011"), 0)).toBe(0x16c6b7ab);
    expect(murmur3x86_32(hex("001122"), 0)).toBe(0x8eb51c3d);
    expect(murmur3x86_32(hex("00112233"), 0)).toBe(0xb4471bf8);
    expect(murmur3x86_32(hex("001122334455667788"), 0)).toBe(0xb4698def);
  });

  it("passes SMHasher's verification test (0xB0F57EE3)", () => {
    // Hash [0..i) with seed 256-i for i in 0..255, hash the 256 LE results with seed 0.
    const key = Uint8Array.from({ length: 256 }, (_, i) => i);
    const hashes = new Uint8Array(1024);
    const view = new DataView(hashes.buffer);
    for (let i = 0; i < 256; i++)
      view.setUint32(i * 4, murmur3x86_32(key.subarray(0, i), 256 - i), true);
    expect(murmur3x86_32(hashes, 0)).toBe(0xb0f57ee3);
  });

  it("hashes exactly the TextEncoder UTF-8 bytes, for every tail length and odd code points", () => {
    const next = prng(7);
    const alphabet = [
      "a",
      "Z",
      "-",
      "é",
      "π",
      "中",
      "€",
      "😀",
      "𝄞",
      "\ud800",
      "\udfff",
      "\0",
      "\u07ff",
    ];
    // Long strings exercise scratch-buffer growth and the one-off buffer for huge keys.
    const inputs = [
      "",
      "ok",
      "\ud83d",
      "x\udc00y",
      "😀".repeat(100),
      "a".repeat(1000),
      "é".repeat(20_000),
    ];
    for (let len = 0; len < 40; len++) {
      for (let t = 0; t < 20; t++) {
        let s = "";
        for (let i = 0; i < len; i++) s += alphabet[next() % alphabet.length];
        inputs.push(s);
      }
    }
    const mismatches = inputs.filter((s, i) => hash32(s, i) !== murmur3x86_32(utf8.encode(s), i));
    expect(mismatches).toEqual([]);
  });

  it("is deterministic and unsigned 32-bit", () => {
    const bad = ROOMS.slice(0, 10_000).filter((r) => {
      const h = hash32(r);
      return h !== hash32(r) || !Number.isInteger(h) || h < 0 || h > 0xffffffff;
    });
    expect(bad).toEqual([]);
  });

  it("avalanches: one flipped input bit changes ~16 of 32 output bits", () => {
    const next = prng(11);
    const bytes = new Uint8Array(8);
    let flips = 0;
    let trials = 0;
    for (let t = 0; t < 1000; t++) {
      for (let i = 0; i < 8; i++) bytes[i] = next() & 0xff;
      const base = murmur3x86_32(bytes);
      for (let bit = 0; bit < 64; bit++) {
        bytes[bit >> 3]! ^= 1 << (bit & 7);
        let d = (murmur3x86_32(bytes) ^ base) >>> 0;
        bytes[bit >> 3]! ^= 1 << (bit & 7);
        while (d !== 0) {
          d &= d - 1;
          flips++;
        }
        trials++;
      }
    }
    // Mean of 64k Binomial(32, 1/2) draws: sd of the mean is ~0.011 bits.
    expect(Math.abs(flips / trials - 16)).toBeLessThan(0.1);
  });

  it("spreads room names evenly over 256 buckets by high and by low bits", () => {
    const high = new Uint32Array(256);
    const low = new Uint32Array(256);
    for (const r of ROOMS) {
      const h = hash32(r);
      high[h >>> 24]!++;
      low[h & 0xff]!++;
    }
    // Chi-square with 255 degrees of freedom: mean 255, sd ~22.6; +-5 sd.
    for (const counts of [high, low]) {
      const chi = chiSquare(counts, ROOMS.length);
      expect(chi).toBeGreaterThan(142);
      expect(chi).toBeLessThan(368);
    }
  });
});

describe("hash64", () => {
  it("is two murmur3 lanes with fixed seeds over the UTF-8 bytes", () => {
    // The long non-ASCII string forces the shared encode buffer to grow inside hash64.
    const inputs = [
      "",
      "a",
      "room-1",
      "é中😀\ud800",
      "é".repeat(5000),
      "中".repeat(20_000),
      ...ROOMS.slice(0, 200),
    ];
    for (const s of inputs) {
      const bytes = utf8.encode(s);
      const want = {
        hi: murmur3x86_32(bytes, HASH64_SEED_HI),
        lo: murmur3x86_32(bytes, HASH64_SEED_LO),
      };
      expect(hash64(s)).toEqual(want);
      expect(want).toEqual({ hi: hash32(s, HASH64_SEED_HI), lo: hash32(s, HASH64_SEED_LO) });
    }
  });

  it("has differing, uncorrelated halves and no collisions over 200k rooms", () => {
    let equalHalves = 0;
    let equalLowBytes = 0;
    const seen = new Set<bigint>();
    for (const k of ROOM_KEYS) {
      if (k.hi === k.lo) equalHalves++;
      if ((k.hi & 0xff) === (k.lo & 0xff)) equalLowBytes++;
      seen.add(toBigInt(k));
    }
    expect(equalHalves).toBe(0);
    expectBinomial(equalLowBytes, ROOM_KEYS.length, 1 / 256);
    expect(seen.size).toBe(ROOM_KEYS.length);
  });

  it("is deterministic", () => {
    expect(hash64("room-1")).toEqual(hash64("room-1"));
    expect(hash64("room-1")).not.toEqual(hash64("room-2"));
  });
});

describe("jumpHash", () => {
  it("matches published reference values", () => {
    // Values from ClickHouse's jumpConsistentHash tests (the Lamping & Veach C++ code).
    const cases: [bigint, number, number][] = [
      [1n, 1, 0],
      [42n, 57, 43],
      [256n, 1024, 520],
      [3735883980n, 1, 0],
      [3735883980n, 666, 361],
      [16045690984833335023n, 255, 237],
    ];
    for (const [key, buckets, want] of cases) {
      expect(jumpHashBigInt(key, buckets)).toBe(want);
      const split = { hi: Number(key >> 32n), lo: Number(key & 0xffffffffn) };
      expect(jumpHash(split, buckets)).toBe(want);
    }
  });

  it("equals the BigInt reference on 10,000 random keys x bucket counts 1..1000", () => {
    const next = prng(3);
    const mismatches: string[] = [];
    const check = (key: { hi: number; lo: number }, buckets: number) => {
      if (jumpHash(key, buckets) !== jumpHashBigInt(toBigInt(key), buckets)) {
        mismatches.push(`${toBigInt(key)} / ${buckets}`);
      }
    };
    for (let t = 0; t < 10_000; t++) check({ hi: next(), lo: next() }, 1 + (next() % 1000));
    // Every bucket count for a few keys, including carry-heavy edge keys.
    const edge = [
      { hi: 0, lo: 0 },
      { hi: 0xffffffff, lo: 0xffffffff },
      { hi: 0, lo: 0xffffffff },
      { hi: 0xffffffff, lo: 0 },
      { hi: next(), lo: next() },
      { hi: next(), lo: next() },
    ];
    // A key whose first LCG step carries out of the low word: lo * M ≡ 2^32 - 1 (mod 2^32),
    // so the "+ 1" ripples into the high word — a path random keys hit with odds 2^-32.
    const mLo = 0x87b0b0fdn;
    let inv = mLo; // Newton iteration for the inverse of an odd number mod 2^32
    for (let i = 0; i < 5; i++) inv = BigInt.asUintN(32, inv * (2n - mLo * inv));
    const carryLo = Number(BigInt.asUintN(32, -inv));
    expect(BigInt.asUintN(32, BigInt(carryLo) * mLo)).toBe(0xffffffffn);
    edge.push({ hi: 0, lo: carryLo }, { hi: 0x12345678, lo: carryLo });
    for (const key of edge) {
      for (let buckets = 1; buckets <= 1000; buckets++) check(key, buckets);
      for (const buckets of [65_536, 1_000_000_007, MAX_BUCKETS]) check(key, buckets);
    }
    expect(mismatches).toEqual([]);
  });

  it("takes key halves modulo 2^32", () => {
    expect(jumpHash({ hi: -1, lo: -2 }, 1000)).toBe(
      jumpHash({ hi: 0xffffffff, lo: 0xfffffffe }, 1000),
    );
    expect(jumpHashBigInt(-1n, 1000)).toBe(jumpHashBigInt((1n << 64n) - 1n, 1000));
  });

  it("is monotone: growing n -> n+1 keeps a key's bucket or moves it to n", () => {
    const next = prng(5);
    let violations = 0;
    let moves = 0;
    for (let t = 0; t < 2000; t++) {
      const key = { hi: next(), lo: next() };
      let prev = jumpHash(key, 1);
      if (prev !== 0) violations++;
      for (let n = 1; n < 300; n++) {
        const b = jumpHash(key, n + 1);
        if (b !== prev) {
          moves++;
          if (b !== n) violations++;
        }
        prev = b;
      }
    }
    expect(violations).toBe(0);
    // Sanity: keys do move (expected moves per key = H(300) - 1 ~ 5.3).
    expect(moves).toBeGreaterThan(2000 * 4);
  });

  it("moves about 1/(N+1) of 100,000 rooms from N to N+1 buckets, all into bucket N", () => {
    const keys = ROOM_KEYS.slice(0, 100_000);
    for (const n of [1, 2, 7, 16, 63, 255, 999]) {
      let moved = 0;
      let elsewhere = 0;
      for (const k of keys) {
        const after = jumpHash(k, n + 1);
        if (jumpHash(k, n) !== after) {
          moved++;
          if (after !== n) elsewhere++;
        }
      }
      expect(elsewhere).toBe(0);
      // Binomial(100k, 1/(N+1)) if the hash is random; 5 sd is 1.1% (N=1) .. 16% (N=999) of the mean.
      expectBinomial(moved, keys.length, 1 / (n + 1));
    }
  });

  it("spreads 200,000 rooms over 16 buckets within 5% of uniform", () => {
    const counts = new Uint32Array(16);
    for (const k of ROOM_KEYS) counts[jumpHash(k, 16)]!++;
    const mean = ROOM_KEYS.length / 16;
    // sd of a bucket is ~108 rooms (0.87%), so 5% is ~5.8 sd.
    for (const c of counts) expect(Math.abs(c - mean) / mean).toBeLessThan(0.05);
    // Chi-square, 15 degrees of freedom: 37.7 is the p = 0.001 critical value.
    expect(chiSquare(counts, ROOM_KEYS.length)).toBeLessThan(37.7);
  });

  it("shardIndexFor is jumpHash of hash64", () => {
    for (const r of ROOMS.slice(0, 500)) {
      expect(shardIndexFor(r, 64)).toBe(jumpHash(hash64(r), 64));
    }
  });

  it("rejects bucket counts that are not integers in [1, 2^31-1]", () => {
    const key = { hi: 1, lo: 2 };
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_BUCKETS + 1]) {
      expect(() => jumpHash(key, bad)).toThrow(RangeError);
      expect(() => jumpHashBigInt(1n, bad)).toThrow(RangeError);
      expect(() => shardIndexFor("room", bad)).toThrow(RangeError);
    }
    expect(jumpHash(key, 1)).toBe(0);
  });
});

describe("rendezvous hashing", () => {
  const REGIONS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me", "ind"];

  it("rank is a deterministic permutation, best first, ordered by score", () => {
    const set = prepareRendezvous(REGIONS);
    const sorted = [...REGIONS].sort();
    for (const room of ROOMS.slice(0, 300)) {
      const rank = rendezvousRank(room, REGIONS);
      expect([...rank].sort()).toEqual(sorted);
      expect(rendezvousRank(room, REGIONS)).toEqual(rank);
      expect(set.rank(room)).toEqual(rank);
      expect(rendezvousPick(room, REGIONS)).toBe(rank[0]);
      expect(set.pick(room)).toBe(rank[0]);
      expect(REGIONS[set.pickIndex(room)]).toBe(rank[0]);
      const scores = rank.map((node) => rendezvousScore(room, node));
      for (let i = 1; i < scores.length; i++) {
        const ordered =
          scores[i - 1]! > scores[i]! || (scores[i - 1] === scores[i] && rank[i - 1]! < rank[i]!);
        expect(ordered).toBe(true);
      }
      for (const s of scores) expect(Number.isSafeInteger(s) && s >= 0).toBe(true);
    }
  });

  it("does not depend on the order nodes are listed in", () => {
    const shuffled = [...REGIONS].reverse();
    for (const room of ROOMS.slice(0, 200)) {
      expect(rendezvousRank(room, shuffled)).toEqual(rendezvousRank(room, REGIONS));
    }
  });

  it("removing a node moves only the keys that were on it, each to its runner-up", () => {
    const all = prepareRendezvous(REGIONS);
    const removed = "weur";
    const rest = prepareRendezvous(REGIONS.filter((r) => r !== removed));
    let onRemoved = 0;
    let wrong = 0;
    for (const room of ROOMS.slice(0, 20_000)) {
      const rank = all.rank(room);
      const after = rest.pick(room);
      if (rank[0] === removed) onRemoved++;
      if (after !== (rank[0] === removed ? rank[1] : rank[0])) wrong++;
    }
    expect(wrong).toBe(0);
    expectBinomial(onRemoved, 20_000, 1 / REGIONS.length);
  });

  it("adding a node takes about 1/(N+1) of the keys, and only onto itself", () => {
    const before = prepareRendezvous(REGIONS);
    const after = prepareRendezvous([...REGIONS, "new"]);
    const rooms = ROOMS.slice(0, 50_000);
    let moved = 0;
    let elsewhere = 0;
    for (const room of rooms) {
      const a = after.pick(room);
      if (a !== before.pick(room)) {
        moved++;
        if (a !== "new") elsewhere++;
      }
    }
    expect(elsewhere).toBe(0);
    expectBinomial(moved, rooms.length, 1 / (REGIONS.length + 1));
  });

  it("spreads keys evenly over nodes", () => {
    const set = prepareRendezvous(REGIONS);
    const counts = new Uint32Array(REGIONS.length);
    const rooms = ROOMS.slice(0, 50_000);
    for (const room of rooms) counts[set.pickIndex(room)]!++;
    // Chi-square, 9 degrees of freedom: 27.9 is the p = 0.001 critical value.
    expect(chiSquare(counts, rooms.length)).toBeLessThan(27.9);
  });

  it("handles degenerate node lists", () => {
    expect(() => rendezvousPick("room", [])).toThrow(RangeError);
    expect(() => prepareRendezvous([]).pick("room")).toThrow(RangeError);
    expect(rendezvousRank("room", [])).toEqual([]);
    expect(rendezvousPick("room", ["only"])).toBe("only");
    expect(() => rendezvousRank("room", ["a", "b", "a"])).toThrow(RangeError);
  });
});
