/**
 * When a token should be replaced: `marginMs` before its `exp`, so a fresh token is in place
 * before the server closes the socket (1008) at expiry. The token is only read, never
 * verified: checking it is the server's job. Null for a token without a readable `exp`.
 */
export function refreshAt(token: string, marginMs: number): number | null {
  const exp = expiryOf(token);
  return exp === null ? null : exp * 1000 - marginMs;
}

/** The `exp` claim (Unix seconds) of a JWT, or null. */
export function expiryOf(token: string): number | null {
  const payload = token.split(".")[1];
  if (payload === undefined) return null;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims: unknown = JSON.parse(json);
    if (typeof claims !== "object" || claims === null || !("exp" in claims)) return null;
    const exp = (claims as { exp: unknown }).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp : null;
  } catch {
    return null;
  }
}
