import { z } from "zod";
import { connectionIdentitySchema } from "../auth/authenticate";
import type { HaloConfig } from "../config/config-schema";
import { type Region, regionSchema } from "../config/regions";
import { locationOf, type RequestLocation, rankRegions } from "../routing/region-locator";
import { HttpError } from "./errors";
import { roomNameSchema } from "./room-name";

/** Headers the Worker sets on a request it forwards to a shard (the shard trusts nothing else). */
export const SHARD_HEADERS = {
  room: "x-halo-room",
  region: "x-halo-region",
  identity: "x-halo-identity",
  /** `events` when the client asked for presence events (`?presence=events`). */
  presence: "x-halo-presence",
  /** The shard's own index in its region, so it knows which directory to report its load to. */
  shard: "x-halo-shard",
  /** The shard-layout epoch the Worker routed by: a shard on an older one reads its table again. */
  epoch: "x-halo-epoch",
  /** Set by a shard that passed the upgrade on to the room's owner: never passed on twice. */
  forwarded: "x-halo-forwarded",
} as const;

export const shardUpgradeHeadersSchema = z.object({
  room: roomNameSchema,
  region: regionSchema,
  identity: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "identity is not JSON" });
        return z.NEVER;
      }
    })
    .pipe(connectionIdentitySchema),
  presence: z.enum(["events"]).nullish(),
  // Digits only: a missing header (null) must not coerce to shard 0.
  shard: z
    .string()
    .regex(/^\d{1,4}$/)
    .transform(Number)
    .pipe(z.number().int().max(1023)),
  epoch: z
    .string()
    .regex(/^\d{1,15}$/)
    .transform(Number)
    .nullish()
    .transform((epoch) => epoch ?? 0),
  forwarded: z
    .literal("1")
    .nullish()
    .transform((flag) => flag === "1"),
});

/** `?presence=` on a WebSocket URL: `events` opts in to presence events on the extension channel. */
export function parsePresenceOption(raw: string | undefined): "events" | null {
  if (raw === undefined) return null;
  if (raw === "events") return "events";
  throw new HttpError(
    400,
    "invalid_presence_option",
    'presence must be "events" (presence events on the extension channel) or absent',
    "presence",
  );
}

/** Validates the `:room` path segment; a bad name is a 400 that names the field. */
export function parseRoomName(raw: string | undefined): string {
  const result = roomNameSchema.safeParse(raw ?? "");
  if (!result.success) {
    throw new HttpError(
      400,
      "invalid_room_name",
      result.error.issues[0]?.message ?? "invalid room name",
      "room",
    );
  }
  return result.data;
}

/**
 * Configured regions nearest first from the client: from `?region=` where configuration allows
 * it (the client is placed at that region's point), else from `request.cf`'s location, else
 * from the default region.
 */
export function nearestRegions(
  override: string | undefined,
  location: RequestLocation | undefined,
  config: HaloConfig,
): Region[] {
  if (override !== undefined) {
    if (!config.allowRegionOverride) {
      throw new HttpError(
        400,
        "region_override_disabled",
        "this deployment does not let clients choose their region",
        "region",
      );
    }
    const region = configuredRegion(override, config, 400);
    return rankRegions(locationOf(region), config.regions, region);
  }
  return rankRegions(location, config.regions, config.defaultRegion);
}

/**
 * A configured region named by the caller, or `region_not_configured` naming it: a 400 for a
 * query parameter, a 404 for a path segment.
 */
export function configuredRegion(
  raw: string | undefined,
  config: HaloConfig,
  status: 400 | 404,
): Region {
  const parsed = regionSchema.safeParse(raw);
  if (!parsed.success || !config.regions.includes(parsed.data)) {
    throw new HttpError(
      status,
      "region_not_configured",
      `region "${raw}" is not one of the configured regions: ${config.regions.join(", ")}`,
      "region",
    );
  }
  return parsed.data;
}

/** The nearest configured region, regardless of membership (operators' lookups). */
export function resolveRegion(
  override: string | undefined,
  location: RequestLocation | undefined,
  config: HaloConfig,
): Region {
  return nearestRegions(override, location, config)[0] as Region;
}

/** Decodes `?since=` (a base64 Yjs state vector); a bad one is a 400 that names the field. */
export function parseStateVector(
  raw: string | undefined,
  decode: (bytes: Uint8Array) => unknown,
): Uint8Array | null {
  if (raw === undefined) return null;
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(raw.replace(/-/g, "+").replace(/_/g, "/")), (c) =>
      c.charCodeAt(0),
    );
    decode(bytes);
  } catch {
    throw new HttpError(
      400,
      "invalid_state_vector",
      "since must be a base64-encoded Yjs state vector",
      "since",
    );
  }
  return bytes;
}
