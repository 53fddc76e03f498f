import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config-schema";
import type { Region } from "../../src/config/regions";
import {
  addedLatencyMs,
  faultPlanSchema,
  isPartitioned,
  isStopped,
} from "../../src/membership/fault-plan";
import { LoadReporter } from "../../src/membership/load-reporter";
import { MembershipNode } from "../../src/membership/membership-node";
import { gossipMessageSchema } from "../../src/membership/membership-schema";
import { chooseRegion } from "../../src/membership/region-choice";
import type { MemberStatus } from "../../src/membership/region-entry";
import { locationOf, rankRegions } from "../../src/routing/region-locator";

const statuses =
  (known: Partial<Record<Region, MemberStatus>>) =>
  (region: Region): MemberStatus | undefined =>
    known[region];

describe("chooseRegion: nearest region not known to be down or drained", () => {
  const nearest: Region[] = ["weur", "eeur", "enam"];

  it("takes the nearest alive region, and one the table has not heard of yet", () => {
    expect(chooseRegion(nearest, statuses({ weur: "alive" }))).toBe("weur");
    expect(chooseRegion(nearest, statuses({}))).toBe("weur");
  });

  it("skips suspect, dead and drained (left) regions", () => {
    expect(chooseRegion(nearest, statuses({ weur: "left", eeur: "alive" }))).toBe("eeur");
    expect(chooseRegion(nearest, statuses({ weur: "dead", eeur: "suspect" }))).toBe("enam");
  });

  it("with every region known down, takes a suspect one, else the nearest (routing fails open)", () => {
    expect(chooseRegion(nearest, statuses({ weur: "dead", eeur: "suspect", enam: "left" }))).toBe(
      "eeur",
    );
    expect(chooseRegion(nearest, statuses({ weur: "dead", eeur: "dead", enam: "left" }))).toBe(
      "weur",
    );
  });

  it("refuses an empty list", () => {
    expect(() => chooseRegion([], statuses({}))).toThrow(RangeError);
  });
});

describe("rankRegions", () => {
  it("orders configured regions by distance from the client, the region's own point first", () => {
    expect(rankRegions(locationOf("weur"), ["apac", "wnam", "weur"], "wnam")).toEqual([
      "weur",
      "wnam",
      "apac",
    ]);
    expect(rankRegions(locationOf("apac"), ["apac", "wnam", "weur"], "wnam")[0]).toBe("apac");
  });

  it("without a location, starts from the fallback region", () => {
    expect(rankRegions(undefined, ["apac", "wnam", "weur"], "weur")[0]).toBe("weur");
  });
});

describe("LoadReporter: at most one report per interval, and a trailing one", () => {
  it("reports the first change at once, owes the next within the interval, pays it when due", () => {
    const reporter = new LoadReporter(1000);
    expect(reporter.changed(0)).toBe(true);
    expect(reporter.nextDue()).toBeNull();
    expect(reporter.changed(200)).toBe(false);
    expect(reporter.changed(400)).toBe(false);
    expect(reporter.nextDue()).toBe(1000);
    expect(reporter.due(999)).toBe(false);
    expect(reporter.due(1000)).toBe(true);
    expect(reporter.nextDue()).toBeNull();
    expect(reporter.due(5000)).toBe(false); // nothing owed
    expect(reporter.changed(5000)).toBe(true);
  });
});

describe("fault plan", () => {
  const plan = faultPlanSchema.parse({
    partitions: [["wnam", "apac"]],
    latency: [
      { between: ["weur", "wnam"], ms: 200 },
      { between: ["wnam", "weur"], ms: 300 },
    ],
    stopped: ["weur"],
  });

  it("cuts pairs both ways, takes the largest added latency, and names stopped directories", () => {
    expect(isPartitioned(plan, "apac", "wnam")).toBe(true);
    expect(isPartitioned(plan, "apac", "weur")).toBe(false);
    expect(addedLatencyMs(plan, "wnam", "weur")).toBe(300);
    expect(addedLatencyMs(plan, "apac", "weur")).toBe(0);
    expect(isStopped(plan, "weur")).toBe(true);
    expect(isStopped(plan, "wnam")).toBe(false);
  });

  it("refuses unknown regions, negative latency and unknown fields", () => {
    expect(faultPlanSchema.safeParse({ partitions: [["wnam", "mars"]] }).success).toBe(false);
    expect(
      faultPlanSchema.safeParse({ latency: [{ between: ["wnam", "weur"], ms: -1 }] }).success,
    ).toBe(false);
    expect(faultPlanSchema.safeParse({ crash: ["wnam"] }).success).toBe(false);
  });
});

describe("gossip messages at the RPC boundary", () => {
  it("accept what the core sends and refuse what it never would", () => {
    const syn = { kind: "syn", from: "wnam", nonce: 1, digest: [["wnam", 0, 0, 5, 0, 0]] };
    expect(gossipMessageSchema.safeParse(syn).success).toBe(true);
    expect(gossipMessageSchema.safeParse({ ...syn, from: "mars" }).success).toBe(false);
    expect(
      gossipMessageSchema.safeParse({ ...syn, digest: [["wnam", 0, 7, 5, 0, 0]] }).success,
      "a status rank that does not exist",
    ).toBe(false);
    const ack = {
      kind: "ack",
      from: "weur",
      nonce: 1,
      entries: [],
      beats: [["wnam", 0, 9]],
      want: [["apac", 0, 0, -1, 0, 0]],
    };
    expect(gossipMessageSchema.safeParse(ack).success).toBe(true);
    expect(
      gossipMessageSchema.safeParse({ ...ack, beats: [["wnam", 0, -3]] }).success,
      "a negative heartbeat",
    ).toBe(false);
  });
});

describe("membership configuration", () => {
  const base = { environment: "development", shards: { wnam: 2, weur: 2 } } as const;

  it("defaults seeds to every configured region", () => {
    expect(parseConfig(base).membership.seeds).toEqual(["wnam", "weur"]);
    expect(parseConfig({ ...base, membership: { seeds: ["weur"] } }).membership.seeds).toEqual([
      "weur",
    ]);
  });

  it("names the field of every inconsistency", () => {
    expect(() => parseConfig({ ...base, membership: { seeds: ["apac"] } })).toThrow(
      /membership\.seeds\.0: "apac" is not a configured region/,
    );
    expect(() =>
      parseConfig({ ...base, membership: { gossipIntervalMs: 1000, suspectAfterMs: 1500 } }),
    ).toThrow(/membership\.suspectAfterMs: must be at least twice gossipIntervalMs/);
    expect(() =>
      parseConfig({ ...base, membership: { suspicionMinMs: 5000, suspicionMaxMs: 4000 } }),
    ).toThrow(/membership\.suspicionMaxMs/);
    expect(() =>
      parseConfig({
        environment: "production",
        shards: { wnam: 1 },
        membership: { faultInjection: true },
      }),
    ).toThrow(/membership\.faultInjection: must be false when environment is production/);
  });
});

describe("MembershipNode.reportShardLoad", () => {
  it("carries the sum of each shard's latest report, a newer report replacing the older", () => {
    const settings = membershipSchemaDefaults();
    const node = MembershipNode.start({ region: "wnam", shards: 2, seeds: [] }, settings, 0);
    node.reportShardLoad(1, 0, { connections: 3, rooms: 2 });
    node.reportShardLoad(2, 1, { connections: 4, rooms: 1 });
    expect(node.entry("wnam")?.load).toEqual({ connections: 7, rooms: 3 });
    node.reportShardLoad(3, 0, { connections: 0, rooms: 0 });
    expect(node.entry("wnam")?.load).toEqual({ connections: 4, rooms: 1 });
  });
});

function membershipSchemaDefaults() {
  return parseConfig({ environment: "development", shards: { wnam: 2 } }).membership;
}
