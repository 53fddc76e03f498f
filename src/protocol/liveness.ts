/**
 * The liveness check a client may run without waking a hibernating shard: it sends the text
 * frame `PING_FRAME` and the platform answers `PONG_FRAME` itself (the shard registers the
 * pair with `setWebSocketAutoResponse`), so the check costs the shard no wake-up and no
 * duration. Any other text frame is still refused (close 1003).
 */
export const PING_FRAME = "ping";
export const PONG_FRAME = "pong";
