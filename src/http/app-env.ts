import type { TokenVerifier } from "../auth/token-verifier";
import type { HaloConfig } from "../config/config-schema";

/** Secrets come from `wrangler secret put` (or `.dev.vars` locally), never from wrangler.toml. */
export type Secrets = {
  /** The HS256 key tokens are signed with. */
  HALO_TOKEN_SECRET?: string;
  /** Turns the admin endpoints on; they answer 404 without it. */
  HALO_ADMIN_TOKEN?: string;
  /** Signs webhook deliveries; required when `presence.webhook` is configured. */
  HALO_WEBHOOK_SECRET?: string;
};

export type Bindings = Env & Secrets;

/** The hono environment of every route: bindings, plus what the first middleware parsed. */
export type AppEnv = {
  Bindings: Bindings;
  Variables: { config: HaloConfig; verifier: TokenVerifier | null };
};
