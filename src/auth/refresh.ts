import type { AuthSettings } from "../config/config-schema";
import { HttpError } from "../http/errors";
import { authenticate, type ConnectionIdentity } from "./authenticate";
import type { TokenVerifier } from "./token-verifier";

/** A fresh token checked for an open connection: its identity in the room, or why it is refused. */
export type RefreshVerdict =
  | { ok: true; identity: ConnectionIdentity }
  | { ok: false; reason: string };

/**
 * Checks a token sent in-band (`auth.refresh`) exactly as the Worker checks one at the door
 * for `room`: signature, claims, expiry, lifetime and the `read` right there. Without a
 * verifier (anonymous development access) a refresh is refused rather than taken as anonymous:
 * an anonymous connection has no expiry to move, and the door would refuse that token too.
 * Whether the token names the connection's own user is the room core's check
 * (`RoomReplica.refreshIdentity`).
 */
export async function verifyRefresh(
  token: string,
  room: string,
  auth: AuthSettings,
  verifier: TokenVerifier | null,
  nowMs: number,
): Promise<RefreshVerdict> {
  if (verifier === null) return { ok: false, reason: "token refresh needs a token verifier" };
  try {
    const identity = await authenticate({ token }, room, auth, verifier, nowMs, () => "");
    return { ok: true, identity };
  } catch (error) {
    if (error instanceof HttpError)
      return { ok: false, reason: `token refresh refused: ${error.message}` };
    throw error;
  }
}
