import { SignJWT } from "jose";
import type { Capability } from "../../src/auth/capabilities";

// The secret vitest.workers.config.ts binds as HALO_TOKEN_SECRET.
const SECRET = new TextEncoder().encode("workers-test-secret-not-for-production");

/** An HS256 token for `sub` with capability `cap`, as an application backend would sign it. */
export async function token(
  sub: string,
  cap: Capability,
  expiresInSeconds = 600,
  key = SECRET,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ cap, name: `${sub} (test)` })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + expiresInSeconds)
    .sign(key);
}
