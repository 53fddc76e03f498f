import { ConfigError, type HaloConfig } from "../config/config-schema";
import { createTokenVerifier, type TokenVerifier } from "./token-verifier";

/** Where the HS256 secret comes from: the `HALO_TOKEN_SECRET` secret of the Worker's (or the shard's) env. */
export interface TokenSecretEnv {
  HALO_TOKEN_SECRET?: string | undefined;
}

const verifiers = new WeakMap<object, TokenVerifier | null>();

type JsonWebKeySetLike = Parameters<typeof createTokenVerifier>[0]["jwks"];

/**
 * The token verifier for this isolate's keys, or null when none is configured (anonymous
 * development access only). Built once per env object and kept for the isolate's life; the
 * Worker checks tokens at the door with it and the shard checks in-band refreshes with it, so
 * both apply exactly the same rules. Throws a `ConfigError` when no key is configured and
 * anonymous access is off: a deployment that could check no token serves nothing.
 */
export function verifierFor(env: TokenSecretEnv, config: HaloConfig): TokenVerifier | null {
  if (verifiers.has(env)) return verifiers.get(env) ?? null;
  const secret = env.HALO_TOKEN_SECRET || undefined;
  const verifier =
    secret || config.auth.jwks
      ? createTokenVerifier(
          { hs256Secret: secret, jwks: config.auth.jwks as JsonWebKeySetLike | undefined },
          config.auth,
        )
      : null;
  if (verifier === null && !config.auth.anonymous) {
    throw new ConfigError(
      "no token key configured: set the HALO_TOKEN_SECRET secret or HALO_CONFIG.auth.jwks (or, in development only, HALO_CONFIG.auth.anonymous = true)",
    );
  }
  verifiers.set(env, verifier);
  return verifier;
}
