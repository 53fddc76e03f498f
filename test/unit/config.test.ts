import { describe, expect, it } from "vitest";
import {
  ConfigError,
  configFromEnv,
  type HaloConfig,
  limitsSchema,
  parseConfig,
} from "../../src/config/config-schema";
import { REGION_CENTROIDS, REGION_NAMES, regionSchema } from "../../src/config/regions";

const MiB = 1024 * 1024;

/** The ConfigError message for `raw` (fails the test if it parses). */
function configErrorOf(raw: unknown): string {
  try {
    parseConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).name).toBe("ConfigError");
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(raw)} to be rejected`);
}

describe("parseConfig: defaults", () => {
  it("fills every default from the smallest valid configuration", () => {
    const config = parseConfig({ shards: { weur: 2 } });
    expect(config.environment).toBe("production");
    expect(config.regions).toEqual(["weur"]);
    expect(config.defaultRegion).toBe("weur");
    expect(config.allowRegionOverride).toBe(false);
    expect(config.limits).toEqual({
      maxFrameBytes: MiB,
      maxAwarenessStateBytes: 8 * 1024,
      maxClientIdsPerConnection: 1,
      maxRoomsInMemory: 1000,
      roomMemoryBudgetBytes: 64 * MiB,
      compactAfterUpdates: 500,
      compactAfterBytes: 4 * MiB,
      maxRowBytes: MiB,
      maxConnectionsPerRoom: 1000,
      messagesPerSecond: 100,
      messageBurst: 200,
      restRequestsPerSecond: 20,
      restBurst: 40,
      maxTrackedRestClients: 10_000,
      maxDocumentBytes: 16 * MiB,
      snapshotPageBytes: 256 * 1024,
    });
  });

  it("a partial limits object keeps the defaults of the limits it leaves out", () => {
    const config = parseConfig({ shards: { weur: 1 }, limits: { maxFrameBytes: 2048 } });
    expect(config.limits.maxFrameBytes).toBe(2048);
    expect(config.limits.compactAfterUpdates).toBe(500);
    expect(config.limits.maxAwarenessStateBytes).toBe(8 * 1024);
  });

  it("the default limits are what limitsSchema gives an empty object", () => {
    expect(parseConfig({ shards: { weur: 1 } }).limits).toEqual(limitsSchema.parse({}));
  });

  it("keeps the per-region shard counts", () => {
    const config = parseConfig({ shards: { wnam: 4, weur: 2, apac: 1 } });
    expect(config.shardCount("wnam")).toBe(4);
    expect(config.shardCount("weur")).toBe(2);
    expect(config.shardCount("apac")).toBe(1);
  });

  it("shardCount of a region that is not configured throws a ConfigError naming it", () => {
    const config = parseConfig({ shards: { weur: 2 } });
    expect(() => config.shardCount("sam")).toThrow(ConfigError);
    expect(() => config.shardCount("sam")).toThrow(/region "sam" is not configured/);
  });

  it("lists regions in configuration order, and defaultRegion falls back to the first", () => {
    const config = parseConfig({ shards: { apac: 2, weur: 1, enam: 3 } });
    expect(config.regions).toEqual(["apac", "weur", "enam"]);
    expect(config.defaultRegion).toBe("apac");
  });

  it("an explicit defaultRegion wins over the first region", () => {
    const config = parseConfig({ shards: { apac: 2, weur: 1 }, defaultRegion: "weur" });
    expect(config.defaultRegion).toBe("weur");
  });

  it("development may allow the region override", () => {
    const config = parseConfig({
      environment: "development",
      shards: { weur: 1 },
      allowRegionOverride: true,
    });
    expect(config.environment).toBe("development");
    expect(config.allowRegionOverride).toBe(true);
  });

  it("accepts the configuration as a JSON string (a wrangler var)", () => {
    const config = parseConfig(
      JSON.stringify({ shards: { enam: 3, weur: 1 }, limits: { maxRoomsInMemory: 5 } }),
    );
    expect(config.regions).toEqual(["enam", "weur"]);
    expect(config.shardCount("enam")).toBe(3);
    expect(config.limits.maxRoomsInMemory).toBe(5);
  });

  it("accepts the largest allowed values", () => {
    const config = parseConfig({
      shards: { weur: 1024 },
      limits: {
        maxFrameBytes: 32 * MiB,
        maxAwarenessStateBytes: 9 * 1024,
        maxClientIdsPerConnection: 1,
        maxRowBytes: 2_000_000,
      },
    });
    expect(config.shardCount("weur")).toBe(1024);
  });
});

describe("parseConfig: errors name the field", () => {
  it("rejects a missing configuration", () => {
    expect(configErrorOf(undefined)).toMatch(/^invalid configuration: HALO_CONFIG/);
  });

  it("rejects a configuration without shards", () => {
    expect(configErrorOf({})).toMatch(/HALO_CONFIG\.shards/);
  });

  it("rejects an empty shards map", () => {
    expect(configErrorOf({ shards: {} })).toMatch(
      /HALO_CONFIG\.shards: configure at least one region/,
    );
  });

  it.each([0, 1025, 1.5, "2"])("rejects a shard count of %j", (count) => {
    expect(configErrorOf({ shards: { weur: count } })).toMatch(/HALO_CONFIG\.shards\.weur/);
  });

  it("rejects an unknown region key", () => {
    const message = configErrorOf({ shards: { weur: 1, mars: 2 } });
    expect(message).toMatch(/HALO_CONFIG\.shards/);
    expect(message).toContain("mars");
  });

  it("rejects allowRegionOverride in production", () => {
    expect(configErrorOf({ shards: { weur: 1 }, allowRegionOverride: true })).toContain(
      "HALO_CONFIG.allowRegionOverride: must be false when environment is production",
    );
    expect(
      configErrorOf({ environment: "production", shards: { weur: 1 }, allowRegionOverride: true }),
    ).toContain("HALO_CONFIG.allowRegionOverride");
  });

  it("rejects an unknown limit key, because the limits schema is strict", () => {
    const message = configErrorOf({ shards: { weur: 1 }, limits: { maxFrameByte: 2048 } });
    expect(message).toMatch(/HALO_CONFIG\.limits/);
    expect(message).toContain("maxFrameByte");
  });

  it("rejects an unknown top-level key", () => {
    expect(configErrorOf({ shards: { weur: 1 }, shard: { weur: 1 } })).toContain('"shard"');
  });

  it.each([
    ["maxFrameBytes", 1023],
    ["maxFrameBytes", 32 * MiB + 1],
    ["maxAwarenessStateBytes", 63],
    ["maxAwarenessStateBytes", 9 * 1024 + 1],
    ["maxClientIdsPerConnection", 0],
    ["maxClientIdsPerConnection", 17],
    ["maxRoomsInMemory", 0],
    ["roomMemoryBudgetBytes", MiB - 1],
    ["compactAfterUpdates", 0],
    ["compactAfterBytes", 1023],
    ["maxRowBytes", 2_000_001],
    ["maxRowBytes", 4096.5],
    ["maxConnectionsPerRoom", 0],
    ["maxConnectionsPerRoom", 32_769],
    ["messagesPerSecond", 0],
    ["messageBurst", 0],
    ["messageBurst", 1.5],
    ["restRequestsPerSecond", 0],
    ["restBurst", 0],
    ["maxTrackedRestClients", 99],
    ["maxDocumentBytes", 64 * 1024 - 1],
  ])("rejects limits.%s = %d and names it", (key, value) => {
    expect(configErrorOf({ shards: { weur: 1 }, limits: { [key]: value } })).toContain(
      `HALO_CONFIG.limits.${key}`,
    );
  });

  it.each([
    ["maxCoalesceMs", -1],
    ["maxCoalesceMs", 1001],
    ["sendsPerSecond", 99],
    ["writesPerSecond", 0],
  ])("rejects fanout.%s = %d and names it", (key, value) => {
    expect(configErrorOf({ shards: { weur: 1 }, fanout: { [key]: value } })).toContain(
      `HALO_CONFIG.fanout.${key}`,
    );
  });

  it("rejects an unknown fanout key, because the fanout schema is strict", () => {
    const message = configErrorOf({ shards: { weur: 1 }, fanout: { windowMs: 5 } });
    expect(message).toContain("HALO_CONFIG.fanout");
    expect(message).toContain("windowMs");
  });

  it("fanout defaults: coalescing on, capped at 20 ms; 0 keeps every change immediate", () => {
    expect(parseConfig({ shards: { weur: 1 } }).fanout).toEqual({
      maxCoalesceMs: 20,
      sendsPerSecond: 50_000,
      writesPerSecond: 500,
    });
    expect(
      parseConfig({ shards: { weur: 1 }, fanout: { maxCoalesceMs: 0 } }).fanout.maxCoalesceMs,
    ).toBe(0);
  });

  it("rejects awareness limits whose states could not fit a socket attachment", () => {
    expect(
      configErrorOf({
        shards: { weur: 1 },
        limits: { maxClientIdsPerConnection: 2, maxAwarenessStateBytes: 8192 },
      }),
    ).toContain(
      "HALO_CONFIG.limits.maxAwarenessStateBytes: maxClientIdsPerConnection x maxAwarenessStateBytes must be at most 9216",
    );
    expect(() =>
      parseConfig({
        shards: { weur: 1 },
        limits: { maxClientIdsPerConnection: 16, maxAwarenessStateBytes: 576 },
      }),
    ).not.toThrow();
  });

  it("rejects a defaultRegion that is not configured", () => {
    expect(configErrorOf({ shards: { weur: 1 }, defaultRegion: "apac" })).toContain(
      'HALO_CONFIG.defaultRegion: "apac" is not a configured region',
    );
  });

  it("rejects a defaultRegion that is not a region at all", () => {
    expect(configErrorOf({ shards: { weur: 1 }, defaultRegion: "moon" })).toContain(
      "HALO_CONFIG.defaultRegion",
    );
  });

  it("rejects an unknown environment", () => {
    expect(configErrorOf({ shards: { weur: 1 }, environment: "staging" })).toContain(
      "HALO_CONFIG.environment",
    );
  });

  it("reports every bad field at once", () => {
    const message = configErrorOf({
      shards: { weur: 0 },
      limits: { maxFrameBytes: 1 },
      environment: "nope",
    });
    expect(message).toContain("HALO_CONFIG.shards.weur");
    expect(message).toContain("HALO_CONFIG.limits.maxFrameBytes");
    expect(message).toContain("HALO_CONFIG.environment");
    expect(message.split("; ").length).toBeGreaterThanOrEqual(3);
  });

  it("rejects a string that is not JSON", () => {
    expect(configErrorOf("{shards: weur}")).toBe(
      "invalid configuration: HALO_CONFIG is a string but not valid JSON",
    );
  });

  it("rejects a JSON string whose content is invalid, naming the field", () => {
    expect(configErrorOf('{"shards":{"weur":-1}}')).toContain("HALO_CONFIG.shards.weur");
  });
});

describe("configFromEnv", () => {
  it("parses once per env object", () => {
    const env: { HALO_CONFIG?: unknown } = { HALO_CONFIG: { shards: { weur: 2 } } };
    const first = configFromEnv(env);
    env.HALO_CONFIG = { shards: { apac: 9 } }; // ignored: the env object was seen already
    const second = configFromEnv(env);
    expect(second).toBe(first);
    expect(second.regions).toEqual(["weur"]);
  });

  it("a different env object is parsed on its own", () => {
    const a = configFromEnv({ HALO_CONFIG: '{"shards":{"weur":2}}' });
    const b = configFromEnv({ HALO_CONFIG: '{"shards":{"apac":3}}' });
    expect(a).not.toBe(b);
    expect(a.regions).toEqual(["weur"]);
    expect(b.shardCount("apac")).toBe(3);
  });

  it("an invalid configuration throws every time and is not cached", () => {
    const env: { HALO_CONFIG?: unknown } = {};
    expect(() => configFromEnv(env)).toThrow(ConfigError);
    expect(() => configFromEnv(env)).toThrow(ConfigError);
    env.HALO_CONFIG = { shards: { oc: 1 } };
    const config: HaloConfig = configFromEnv(env);
    expect(config.defaultRegion).toBe("oc");
  });
});

describe("regions", () => {
  it("every region name has a centroid and is accepted by the schema", () => {
    expect(REGION_NAMES).toHaveLength(9);
    for (const region of REGION_NAMES) {
      expect(regionSchema.parse(region)).toBe(region);
      const [lat, lon] = REGION_CENTROIDS[region];
      expect(Math.abs(lat)).toBeLessThanOrEqual(90);
      expect(Math.abs(lon)).toBeLessThanOrEqual(180);
    }
    expect(regionSchema.safeParse("WEUR").success).toBe(false);
  });
});
