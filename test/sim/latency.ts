import { REGION_NAMES, type Region } from "../../src/config/regions";
import type { SimRandom } from "./random";

/**
 * Round-trip times between Durable Object location hints, in ms: rounded public inter-region
 * figures (enam-weur about 80, enam-apac about 220), not measurements of Cloudflare's network.
 */
const RTT: Readonly<Record<string, number>> = {
  "wnam-enam": 70,
  "wnam-sam": 170,
  "wnam-weur": 140,
  "wnam-eeur": 165,
  "wnam-apac": 160,
  "wnam-oc": 150,
  "wnam-afr": 280,
  "wnam-me": 230,
  "enam-sam": 120,
  "enam-weur": 80,
  "enam-eeur": 110,
  "enam-apac": 220,
  "enam-oc": 200,
  "enam-afr": 230,
  "enam-me": 170,
  "sam-weur": 190,
  "sam-eeur": 220,
  "sam-apac": 320,
  "sam-oc": 300,
  "sam-afr": 340,
  "sam-me": 290,
  "weur-eeur": 30,
  "weur-apac": 190,
  "weur-oc": 270,
  "weur-afr": 160,
  "weur-me": 100,
  "eeur-apac": 200,
  "eeur-oc": 290,
  "eeur-afr": 190,
  "eeur-me": 80,
  "apac-oc": 120,
  "apac-afr": 280,
  "apac-me": 120,
  "oc-afr": 380,
  "oc-me": 210,
  "afr-me": 150,
};

export type RttMatrix = (a: string, b: string) => number;

/** The RTT table above; a region to itself is 1 ms. */
export const regionRtt: RttMatrix = (a, b) => {
  if (a === b) return 1;
  const rtt = RTT[`${a}-${b}`] ?? RTT[`${b}-${a}`];
  if (rtt === undefined) throw new RangeError(`no RTT between ${a} and ${b}`);
  return rtt;
};

/** The nine real location hints, in a fixed order. */
export const REAL_REGIONS: readonly Region[] = REGION_NAMES;

/**
 * More regions than Cloudflare has, for scaling figures: `count` named points scattered over the
 * globe, RTT = 5 ms + great-circle km / 80 (which gives enam-weur about 80 ms).
 */
export function syntheticRegions(
  count: number,
  random: SimRandom,
): { regions: string[]; rtt: RttMatrix } {
  const points = new Map<string, readonly [number, number]>();
  const regions: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `r${String(i).padStart(2, "0")}`;
    regions.push(name);
    // Uniform on the sphere: latitude from arcsin of a uniform value.
    const lat = (Math.asin(random.between(-1, 1)) * 180) / Math.PI;
    points.set(name, [lat, random.between(-180, 180)]);
  }
  return {
    regions,
    rtt: (a, b) => {
      if (a === b) return 1;
      return 5 + kilometres(points.get(a) ?? [0, 0], points.get(b) ?? [0, 0]) / 80;
    },
  };
}

function kilometres(
  [lat1, lon1]: readonly [number, number],
  [lat2, lon2]: readonly [number, number],
): number {
  const rad = Math.PI / 180;
  const a =
    Math.sin(((lat2 - lat1) * rad) / 2) ** 2 +
    Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(a)));
}
