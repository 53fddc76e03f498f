import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  jwtVerify,
} from "jose";
import { z } from "zod";
import { type Capability, capabilitySchema } from "./capabilities";
import { MAX_TOKEN_CHARS } from "./token-limits";

const utf8 = new TextEncoder();

/** Largest `user` claim (presence info shown to others), in UTF-8 bytes of JSON. */
export const MAX_USER_INFO_BYTES = 4096;

/** The claims a Halo token carries; anything else in the payload is ignored. */
export const tokenClaimsSchema = z.object({
  sub: z.string().min(1).max(256),
  exp: z.number().int().positive(),
  name: z.string().max(256).optional(),
  user: z
    .record(z.string(), z.unknown())
    .refine(
      (info) => utf8.encode(JSON.stringify(info)).byteLength <= MAX_USER_INFO_BYTES,
      `user info is over ${MAX_USER_INFO_BYTES} bytes`,
    )
    .optional(),
  cap: capabilitySchema,
});

export interface VerifiedToken {
  userId: string;
  name?: string;
  user?: Record<string, unknown>;
  capability: Capability;
  /** When the token stops being valid, in Unix milliseconds. */
  expiresAt: number;
}

export type AuthErrorCode = "missing_token" | "invalid_token" | "expired_token";

/** A token that does not let its bearer in; `message` says why, without echoing secrets. */
export class AuthError extends Error {
  override readonly name = "AuthError";

  constructor(
    readonly code: AuthErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface TokenKeys {
  /** Shared secret for HS256 (from `wrangler secret` / `.dev.vars`, never from wrangler.toml). */
  hs256Secret?: string | undefined;
  /** Public keys for ES256 / RS256, inline in configuration so nothing is fetched per request. */
  jwks?: JSONWebKeySet | undefined;
}

export interface TokenPolicy {
  issuer?: string | undefined;
  audience?: string | undefined;
  clockToleranceSeconds: number;
  /** Longest time a token may still have to live when it is presented (`exp` - now), in seconds. */
  maxTokenLifetimeSeconds: number;
}

export interface TokenVerifier {
  /** Verifies `token` at time `nowMs` (passed in, so tests and the simulator control it). */
  verify(token: string, nowMs: number): Promise<VerifiedToken>;
}

/**
 * Builds a verifier for the configured keys. The token's algorithm picks the key: HS256 the
 * shared secret, ES256 or RS256 the JWKS; any other algorithm (`none` included) is refused.
 */
export function createTokenVerifier(keys: TokenKeys, policy: TokenPolicy): TokenVerifier {
  const secret = keys.hs256Secret ? new TextEncoder().encode(keys.hs256Secret) : undefined;
  const jwks = keys.jwks ? createLocalJWKSet(keys.jwks) : undefined;
  return {
    async verify(token, nowMs) {
      if (token.length === 0) throw new AuthError("missing_token", "no token given");
      if (token.length > MAX_TOKEN_CHARS)
        throw new AuthError("invalid_token", `token is over ${MAX_TOKEN_CHARS} characters`);
      let alg: string | undefined;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        throw new AuthError("invalid_token", "token is not a JWT");
      }
      const options = {
        algorithms: [alg ?? "none"],
        currentDate: new Date(nowMs),
        clockTolerance: policy.clockToleranceSeconds,
        requiredClaims: ["sub", "exp"],
        ...(policy.issuer ? { issuer: policy.issuer } : {}),
        ...(policy.audience ? { audience: policy.audience } : {}),
      };
      let payload: unknown;
      try {
        if (alg === "HS256" && secret) payload = (await jwtVerify(token, secret, options)).payload;
        else if ((alg === "ES256" || alg === "RS256") && jwks)
          payload = (await jwtVerify(token, jwks, options)).payload;
        else
          throw new AuthError("invalid_token", `algorithm ${alg ?? "(none)"} is not accepted here`);
      } catch (error) {
        throw toAuthError(error);
      }
      const claims = tokenClaimsSchema.safeParse(payload);
      if (!claims.success) {
        const issue = claims.error.issues[0];
        throw new AuthError(
          "invalid_token",
          `claim ${issue?.path.join(".") || "(payload)"}: ${issue?.message ?? "invalid"}`,
        );
      }
      const { sub, exp, name, user, cap } = claims.data;
      if (exp * 1000 - nowMs > policy.maxTokenLifetimeSeconds * 1000) {
        // A "never expires" token could never be revoked; the platform's alarm cannot even be
        // set that far ahead.
        throw new AuthError(
          "invalid_token",
          `claim exp: more than ${policy.maxTokenLifetimeSeconds} s ahead (auth.maxTokenLifetimeSeconds)`,
        );
      }
      return {
        userId: sub,
        capability: cap,
        expiresAt: exp * 1000,
        ...(name ? { name } : {}),
        ...(user ? { user } : {}),
      };
    },
  };
}

function toAuthError(error: unknown): AuthError {
  if (error instanceof AuthError) return error;
  if (error instanceof errors.JWTExpired)
    return new AuthError("expired_token", "token has expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    return new AuthError("invalid_token", `claim ${error.claim}: ${error.reason}`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed)
    return new AuthError("invalid_token", "signature does not verify");
  if (error instanceof errors.JWKSNoMatchingKey)
    return new AuthError("invalid_token", "no configured key matches the token");
  if (error instanceof errors.JOSEAlgNotAllowed)
    return new AuthError("invalid_token", "algorithm is not accepted here");
  return new AuthError("invalid_token", "token is malformed");
}
