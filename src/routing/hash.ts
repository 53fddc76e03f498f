/**
 * Deterministic, non-cryptographic string hashing for routing.
 *
 * All functions hash the UTF-8 encoding of the string (lone surrogates become
 * U+FFFD, exactly as `TextEncoder` does), so a value computed here matches any
 * other MurmurHash3 x86_32 implementation fed the same UTF-8 bytes — e.g. a
 * future non-JS router or an offline analysis script.
 *
 * Not for adversarial inputs: MurmurHash3 has seed-independent multicollisions,
 * so a client who can pick room names can make many of them land on one shard.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** Seeds of the two MurmurHash3 lanes that make up {@link hash64}. */
export const HASH64_SEED_HI = 0x9e3779b9;
export const HASH64_SEED_LO = 0x85ebca6b;

/**
 * MurmurHash3 per-block key premix. It does not depend on the seed, which lets
 * hash64 (and rendezvous scoring) share it across lanes. Exported as a
 * building block for hashing fixed-width integer tuples.
 */
export function mixK(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

/** MurmurHash3 per-block state update with an already premixed block `k`. */
export function mixH(h: number, k: number): number {
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3 finaliser: full avalanche of a 32-bit state. Returns unsigned. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// Reused scratch buffer: routing keys are short, and allocating (or calling
// TextEncoder, which allocates) per lookup would dominate the hash itself.
// Safe because encoding and hashing run synchronously with no re-entry.
let scratch = new Uint8Array(256);
/** Longer non-ASCII inputs get a one-off buffer, so one huge key can't pin a huge scratch. */
const MAX_SCRATCH_CHARS = 16_384;
const encoder = new TextEncoder();

/** Writes `input` as UTF-8 into `scratch` (growing it if needed); returns the byte length. */
function encodeUtf8(input: string): number {
  const n = input.length;
  // Worst case is 3 bytes per UTF-16 code unit (a surrogate pair is 2 units -> 4 bytes).
  if (n * 3 > scratch.length) scratch = new Uint8Array(Math.max(n * 3, scratch.length * 2));
  const buf = scratch;
  let p = 0;
  for (let i = 0; i < n; i++) {
    let c = input.charCodeAt(i);
    if (c < 0x80) {
      buf[p++] = c;
    } else if (c < 0x800) {
      buf[p++] = 0xc0 | (c >>> 6);
      buf[p++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? input.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        buf[p++] = 0xf0 | (c >>> 18);
        buf[p++] = 0x80 | ((c >>> 12) & 0x3f);
        buf[p++] = 0x80 | ((c >>> 6) & 0x3f);
        buf[p++] = 0x80 | (c & 0x3f);
      } else {
        // Lone surrogate: U+FFFD, matching TextEncoder / WHATWG encoding.
        buf[p++] = 0xef;
        buf[p++] = 0xbf;
        buf[p++] = 0xbd;
      }
    } else {
      buf[p++] = 0xe0 | (c >>> 12);
      buf[p++] = 0x80 | ((c >>> 6) & 0x3f);
      buf[p++] = 0x80 | (c & 0x3f);
    }
  }
  return p;
}

function murmur32(bytes: Uint8Array, len: number, seed: number): number {
  let h = seed | 0;
  const blockEnd = len & ~3;
  let i = 0;
  for (; i < blockEnd; i += 4) {
    const k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    h = mixH(h, mixK(k));
  }
  const rem = len & 3;
  if (rem !== 0) {
    let k = 0;
    if (rem === 3) k ^= bytes[i + 2]! << 16;
    if (rem >= 2) k ^= bytes[i + 1]! << 8;
    k ^= bytes[i]!;
    h ^= mixK(k);
  }
  return fmix32(h ^ len);
}

/**
 * MurmurHash3 x86_32 of raw bytes. Exposed for cross-checking against other
 * implementations and for callers that already hold bytes.
 */
export function murmur3x86_32(bytes: Uint8Array, seed = 0): number {
  return murmur32(bytes, bytes.length, seed);
}

/**
 * ASCII fast path: for pure-ASCII strings the UTF-8 bytes are the char codes,
 * so hash straight from the string and skip the buffer round trip (about 1.5x
 * faster on room-id-like strings). Returns -1 at the first non-ASCII char.
 */
function asciiMurmur32(input: string, seed: number): number {
  const len = input.length;
  let h = seed | 0;
  const blockEnd = len & ~3;
  let i = 0;
  for (; i < blockEnd; i += 4) {
    const c0 = input.charCodeAt(i);
    const c1 = input.charCodeAt(i + 1);
    const c2 = input.charCodeAt(i + 2);
    const c3 = input.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) >= 0x80) return -1;
    h = mixH(h, mixK(c0 | (c1 << 8) | (c2 << 16) | (c3 << 24)));
  }
  if (i < len) {
    let k = 0;
    for (let shift = 0; i < len; i++, shift += 8) {
      const c = input.charCodeAt(i);
      if (c >= 0x80) return -1;
      k |= c << shift;
    }
    h ^= mixK(k);
  }
  return fmix32(h ^ len);
}

/** MurmurHash3 x86_32 of the UTF-8 bytes of `input`; unsigned 32-bit result. */
export function hash32(input: string, seed = 0): number {
  const fast = asciiMurmur32(input, seed);
  if (fast >= 0) return fast;
  if (input.length > MAX_SCRATCH_CHARS) {
    const bytes = encoder.encode(input);
    return murmur32(bytes, bytes.length, seed);
  }
  // Encode first: it may replace `scratch`, so read the binding only afterwards.
  const len = encodeUtf8(input);
  return murmur32(scratch, len, seed);
}

/** Two murmur lanes over bytes, sharing the seed-independent key premix. */
function murmur2x32(bytes: Uint8Array, len: number): { hi: number; lo: number } {
  let a = HASH64_SEED_HI | 0;
  let b = HASH64_SEED_LO | 0;
  const blockEnd = len & ~3;
  let i = 0;
  for (; i < blockEnd; i += 4) {
    const k = mixK(
      bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24),
    );
    a = mixH(a, k);
    b = mixH(b, k);
  }
  const rem = len & 3;
  if (rem !== 0) {
    let k = 0;
    if (rem === 3) k ^= bytes[i + 2]! << 16;
    if (rem >= 2) k ^= bytes[i + 1]! << 8;
    k ^= bytes[i]!;
    k = mixK(k);
    a ^= k;
    b ^= k;
  }
  return { hi: fmix32(a ^ len), lo: fmix32(b ^ len) };
}

function hash64Slow(input: string): { hi: number; lo: number } {
  if (input.length > MAX_SCRATCH_CHARS) {
    const bytes = encoder.encode(input);
    return murmur2x32(bytes, bytes.length);
  }
  // Encode first: it may replace `scratch`, so read the binding only afterwards.
  const len = encodeUtf8(input);
  return murmur2x32(scratch, len);
}

/**
 * 64-bit hash as two unsigned 32-bit halves.
 *
 * Construction: two MurmurHash3 x86_32 lanes over the same UTF-8 bytes with
 * different seeds, i.e. `hi === hash32(input, HASH64_SEED_HI)` and
 * `lo === hash32(input, HASH64_SEED_LO)`. The per-block key premix does not
 * depend on the seed, so one pass computes both lanes for little more than the
 * cost of one. The halves are as independent as seeded murmur lanes are (good
 * for routing), but the pair inherits murmur's seed-independent collisions:
 * inputs that collide in one lane by construction collide in both.
 */
export function hash64(input: string): { hi: number; lo: number } {
  // Same ASCII fast path as hash32, inlined for two lanes.
  const len = input.length;
  let a = HASH64_SEED_HI | 0;
  let b = HASH64_SEED_LO | 0;
  const blockEnd = len & ~3;
  let i = 0;
  for (; i < blockEnd; i += 4) {
    const c0 = input.charCodeAt(i);
    const c1 = input.charCodeAt(i + 1);
    const c2 = input.charCodeAt(i + 2);
    const c3 = input.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) >= 0x80) return hash64Slow(input);
    const k = mixK(c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
    a = mixH(a, k);
    b = mixH(b, k);
  }
  if (i < len) {
    let k = 0;
    for (let shift = 0; i < len; i++, shift += 8) {
      const c = input.charCodeAt(i);
      if (c >= 0x80) return hash64Slow(input);
      k |= c << shift;
    }
    k = mixK(k);
    a ^= k;
    b ^= k;
  }
  return { hi: fmix32(a ^ len), lo: fmix32(b ^ len) };
}
