import { z } from "zod";

/** Every Durable Object location hint Cloudflare accepts; the deployed set is configuration. */
export const REGION_NAMES = [
  "wnam",
  "enam",
  "sam",
  "weur",
  "eeur",
  "apac",
  "oc",
  "afr",
  "me",
] as const;

export const regionSchema = z.enum(REGION_NAMES);
export type Region = z.infer<typeof regionSchema>;

/**
 * A representative point per location hint (latitude, longitude in degrees), used only to pick
 * the nearest configured region for a client. Rough on purpose: the choice needs to be right at
 * continent scale, not city scale.
 */
export const REGION_CENTROIDS: Readonly<Record<Region, readonly [number, number]>> = {
  wnam: [40, -118],
  enam: [39, -77],
  sam: [-20, -55],
  weur: [49, 4],
  eeur: [50, 25],
  apac: [20, 115],
  oc: [-30, 145],
  afr: [-10, 22],
  me: [26, 50],
};
