/**
 * WebSocket close codes Halo sends (RFC 6455 section 7.4.1). Every close also carries a
 * human-readable reason (at most 123 bytes, the protocol's limit).
 */
export const CloseCode = {
  Normal: 1000,
  /** Text frames and message types the protocol does not accept from clients. */
  UnsupportedData: 1003,
  /** A frame that does not decode: truncated varint, malformed Yjs update, bad awareness entry. */
  InvalidPayload: 1007,
  /** A frame the connection's rights do not allow, or an expired token. */
  PolicyViolation: 1008,
  /** A frame or awareness state over a configured limit. */
  MessageTooBig: 1009,
  /** The server failed while handling a valid frame. */
  InternalError: 1011,
  /** A capacity limit that clears by itself (the room is full): reconnect later. */
  TryAgainLater: 1013,
  /**
   * The room moved to another shard (a resize) or the region drained: reconnect at once, the
   * Worker routes to the room's new home. The SDK shows status `moved`, with no backoff.
   * (41xx: the SDK's own local closes use 40xx.)
   */
  Moved: 4100,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

const MAX_REASON_BYTES = 123;

/** Trims a close reason to the 123-byte limit of a close frame, never splitting a character. */
export function closeReason(text: string): string {
  const encoder = new TextEncoder();
  if (encoder.encode(text).byteLength <= MAX_REASON_BYTES) return text;
  const chars = Array.from(text); // code points, so an emoji is never cut in half
  while (chars.length > 0 && encoder.encode(`${chars.join("")}…`).byteLength > MAX_REASON_BYTES)
    chars.pop();
  return `${chars.join("")}…`;
}
