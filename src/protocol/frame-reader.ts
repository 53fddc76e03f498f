import { CloseCode } from "./close-codes";
import { ProtocolError } from "./protocol-error";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * A bounds-checked reader for lib0's varint encoding. lib0's own decoder trusts length
 * prefixes (a view past the end of a sub-array reads the neighbouring bytes of the
 * buffer), so client frames go through this one, which throws a `ProtocolError` instead.
 */
export class FrameReader {
  private pos = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.byteLength - this.pos;
  }

  /** An unsigned LEB128 integer of at most 53 bits (what JavaScript numbers hold exactly). */
  readVarUint(what: string): number {
    let value = 0;
    let multiplier = 1;
    for (let shift = 0; shift < 53; shift += 7) {
      if (this.pos >= this.bytes.byteLength) {
        throw malformed(`truncated varint (${what}) at byte ${this.pos}`);
      }
      const byte = this.bytes[this.pos++] as number;
      value += (byte & 0x7f) * multiplier;
      if (byte < 0x80) return value;
      multiplier *= 128;
    }
    throw malformed(`varint (${what}) longer than 53 bits at byte ${this.pos}`);
  }

  /** A varUint length followed by that many bytes; returns a view, not a copy. */
  readVarBytes(what: string): Uint8Array {
    const length = this.readVarUint(`${what} length`);
    if (length > this.remaining) {
      throw malformed(`${what} claims ${length} bytes but ${this.remaining} remain`);
    }
    const view = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return view;
  }

  readVarString(what: string): string {
    return decodeUtf8(this.readVarBytes(what), what);
  }

  expectEnd(what: string): void {
    if (this.remaining !== 0) throw malformed(`${this.remaining} trailing bytes after ${what}`);
  }
}

export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw malformed(`${what} is not valid UTF-8`);
  }
}

export function malformed(detail: string): ProtocolError {
  return new ProtocolError(CloseCode.InvalidPayload, `malformed frame: ${detail}`);
}
