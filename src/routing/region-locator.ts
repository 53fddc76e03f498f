import { REGION_CENTROIDS, type Region } from "../config/regions";

/** The location fields of `request.cf` that region choice reads (all optional: local runs have placeholders or nothing). */
export interface RequestLocation {
  latitude?: string | number | undefined;
  longitude?: string | number | undefined;
  continent?: string | undefined;
}

/** Continent centroids, for requests that carry a continent but no coordinates. */
const CONTINENT_POINTS: Readonly<Record<string, readonly [number, number]>> = {
  NA: [40, -100],
  SA: [-15, -60],
  EU: [50, 10],
  AS: [30, 100],
  OC: [-25, 140],
  AF: [5, 20],
  AN: [-75, 0],
};

/**
 * The configured region nearest to the client, by great-circle distance from the request's
 * coordinates (or its continent) to each region's representative point. `fallback` when the
 * request carries no location at all.
 */
export function nearestRegion(
  location: RequestLocation | undefined,
  candidates: readonly Region[],
  fallback: Region,
): Region {
  if (!pointOf(location) || candidates.length === 0) return fallback;
  return rankRegions(location, candidates, fallback)[0] ?? fallback;
}

/**
 * Configured regions ordered nearest first from the client: by its location, or from the
 * fallback region's own point when the request carries none (local runs), so the fallback
 * comes first and its neighbours after it.
 */
export function rankRegions(
  location: RequestLocation | undefined,
  candidates: readonly Region[],
  fallback: Region,
): Region[] {
  const point = pointOf(location) ?? REGION_CENTROIDS[fallback];
  return candidates
    .map((region) => ({ region, distance: greatCircle(point, REGION_CENTROIDS[region]) }))
    .sort((a, b) => a.distance - b.distance || (a.region < b.region ? -1 : 1))
    .map((ranked) => ranked.region);
}

/** The location of a region's own representative point, as `request.cf` would give it. */
export function locationOf(region: Region): RequestLocation {
  const [latitude, longitude] = REGION_CENTROIDS[region];
  return { latitude, longitude };
}

function pointOf(location: RequestLocation | undefined): readonly [number, number] | undefined {
  if (!location) return undefined;
  const lat = Number(location.latitude);
  const lon = Number(location.longitude);
  if (
    location.latitude !== undefined &&
    location.longitude !== undefined &&
    Number.isFinite(lat) &&
    Number.isFinite(lon)
  ) {
    return [lat, lon];
  }
  return location.continent ? CONTINENT_POINTS[location.continent] : undefined;
}

/** Central angle between two points (radians); monotone in distance, which is all a comparison needs. */
function greatCircle(
  [lat1, lon1]: readonly [number, number],
  [lat2, lon2]: readonly [number, number],
): number {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const a =
    Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * Math.asin(Math.min(1, Math.sqrt(a)));
}
