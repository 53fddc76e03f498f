import { z } from "zod";
import type { AuthSettings } from "../config/config-schema";
import { HttpError } from "../http/errors";
import { MAX_USER_ID_LENGTH, USER_ID_PATTERN } from "../protocol/names";
import { type Right, rightSchema, rightsFor } from "./capabilities";
import { AuthError, type TokenVerifier } from "./token-verifier";

/** Who a connection or request is, as the Worker established it and the shard trusts it. */
export const connectionIdentitySchema = z.object({
  userId: z.string().min(1).max(256),
  name: z.string().max(256).optional(),
  user: z.record(z.string(), z.unknown()).optional(),
  rights: z.array(rightSchema),
  /** When the token expires (Unix ms); null for anonymous access. */
  expiresAt: z.number().nullable(),
});

export type ConnectionIdentity = z.infer<typeof connectionIdentitySchema>;

/** What a request offers to prove who it is. */
export interface Credentials {
  /** From `Authorization: Bearer …`. */
  bearer?: string | undefined;
  /** From `?token=` (browsers cannot set headers on a WebSocket). */
  token?: string | undefined;
  /** From `?user=`, honoured only for anonymous access. */
  user?: string | undefined;
}

const anonymousUserSchema = z
  .string()
  .min(1)
  .max(MAX_USER_ID_LENGTH)
  .regex(USER_ID_PATTERN, "user may contain only A-Z a-z 0-9 . _ ~ : @ -");

/**
 * Establishes who is asking and what they may do in `room`. A token, when given, is always
 * verified; without one, only configuration that allows anonymous access lets the request in.
 * Throws an `HttpError`: 401 for a missing or bad token, 403 when the rights exclude `read`.
 */
export async function authenticate(
  credentials: Credentials,
  room: string,
  auth: AuthSettings,
  verifier: TokenVerifier | null,
  nowMs: number,
  newUserId: () => string,
): Promise<ConnectionIdentity> {
  const token = credentials.bearer ?? credentials.token;
  let identity: ConnectionIdentity;
  if (token !== undefined && verifier !== null) {
    try {
      const verified = await verifier.verify(token, nowMs);
      identity = {
        userId: verified.userId,
        rights: [...rightsFor(room, verified.capability)],
        expiresAt: verified.expiresAt,
        ...(verified.name ? { name: verified.name } : {}),
        ...(verified.user ? { user: verified.user } : {}),
      };
    } catch (error) {
      if (error instanceof AuthError) throw unauthorized(error.code, error.message);
      throw error;
    }
  } else if (token === undefined && auth.anonymous) {
    const user =
      credentials.user === undefined ? undefined : anonymousUserSchema.safeParse(credentials.user);
    if (user && !user.success)
      throw new HttpError(
        400,
        "invalid_user",
        user.error.issues[0]?.message ?? "invalid user",
        "user",
      );
    identity = {
      userId: user?.data ?? `anon-${newUserId()}`,
      rights: [...auth.anonymousRights],
      expiresAt: null,
    };
  } else {
    throw unauthorized(
      token === undefined ? "missing_token" : "invalid_token",
      token === undefined
        ? "a token is required: Authorization: Bearer <jwt> or ?token=<jwt>"
        : "this deployment accepts no tokens",
    );
  }
  if (!identity.rights.includes("read")) {
    throw new HttpError(
      403,
      "forbidden",
      `the token grants no read right in room "${room}"`,
      "token",
    );
  }
  return identity;
}

export function hasRight(identity: { rights: readonly Right[] }, right: Right): boolean {
  return identity.rights.includes(right);
}

function unauthorized(code: string, message: string): HttpError {
  return new HttpError(401, code, message, "token", { "WWW-Authenticate": 'Bearer realm="halo"' });
}
