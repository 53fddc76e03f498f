import { ConfigError } from "../config/config-schema";
import { HttpError } from "./errors";

/** Shorter admin tokens are refused as configuration: they could be guessed. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/**
 * Lets a request through to an admin endpoint only with `Authorization: Bearer <HALO_ADMIN_TOKEN>`.
 * With no admin token configured the endpoints are off (404), as the issue asks of every
 * admin or debug surface.
 */
export async function assertAdmin(
  authorization: string | undefined,
  adminToken: string | undefined,
): Promise<void> {
  if (!adminToken) {
    throw new HttpError(
      404,
      "admin_disabled",
      "admin endpoints are off: set the HALO_ADMIN_TOKEN secret to turn them on",
    );
  }
  if (adminToken.length < MIN_ADMIN_TOKEN_LENGTH) {
    throw new ConfigError(
      `HALO_ADMIN_TOKEN is shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters; use a long random value`,
    );
  }
  const offered = authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
  if (offered === undefined) {
    throw new HttpError(
      401,
      "missing_admin_token",
      "admin endpoints need Authorization: Bearer <admin token>",
      "authorization",
      { "WWW-Authenticate": 'Bearer realm="halo-admin"' },
    );
  }
  if (!(await sameSecret(offered, adminToken))) {
    throw new HttpError(401, "invalid_admin_token", "the admin token is wrong", "authorization", {
      "WWW-Authenticate": 'Bearer realm="halo-admin"',
    });
  }
}

/** Compares digests in constant time, so neither the token's bytes nor its length leak through timing. */
async function sameSecret(offered: string, expected: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(offered)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}
