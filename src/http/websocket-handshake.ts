import { HttpError } from "./errors";

/** True when the request asks to switch to the WebSocket protocol. */
export function wantsWebSocket(headers: Headers): boolean {
  return headers.get("upgrade")?.toLowerCase() === "websocket";
}

const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/; // base64 of a 16-byte nonce

/**
 * Checks an opening handshake as RFC 6455 section 4.2.1 describes it. A malformed handshake
 * gets 400 Bad Request; an unsupported version gets 426 Upgrade Required with the
 * `Sec-WebSocket-Version` the server speaks (section 4.4).
 */
export function assertValidHandshake(method: string, headers: Headers): void {
  if (method !== "GET") {
    throw new HttpError(
      400,
      "bad_handshake",
      `a WebSocket handshake must use GET, not ${method}`,
      "method",
    );
  }
  const connection = headers.get("connection") ?? "";
  if (
    !connection
      .toLowerCase()
      .split(/\s*,\s*/)
      .includes("upgrade")
  ) {
    throw new HttpError(
      400,
      "bad_handshake",
      "the Connection header must include Upgrade",
      "connection",
    );
  }
  const key = headers.get("sec-websocket-key");
  if (key === null) {
    throw new HttpError(
      400,
      "bad_handshake",
      "the Sec-WebSocket-Key header is missing",
      "sec-websocket-key",
    );
  }
  if (!KEY_PATTERN.test(key.trim())) {
    throw new HttpError(
      400,
      "bad_handshake",
      "Sec-WebSocket-Key must be the base64 of 16 bytes",
      "sec-websocket-key",
    );
  }
  const version = headers.get("sec-websocket-version");
  if (version?.trim() !== "13") {
    throw new HttpError(
      426,
      "unsupported_websocket_version",
      `Sec-WebSocket-Version ${version === null ? "is missing" : `"${version}" is not supported`}; this server speaks 13`,
      "sec-websocket-version",
      { "Sec-WebSocket-Version": "13", Upgrade: "websocket", Connection: "Upgrade" },
    );
  }
}
