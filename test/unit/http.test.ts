import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { ConfigError, type HaloConfigInput, parseConfig } from "../../src/config/config-schema";
import { REGION_NAMES } from "../../src/config/regions";
import { HttpError } from "../../src/http/errors";
import { roomNameSchema } from "../../src/http/room-name";
import {
  parseRoomName,
  parseStateVector,
  resolveRegion,
  shardUpgradeHeadersSchema,
} from "../../src/http/room-request";
import { assertValidHandshake, wantsWebSocket } from "../../src/http/websocket-handshake";
import { MAX_ROOM_NAME_LENGTH } from "../../src/protocol/names";
import { shardIndexFor } from "../../src/routing/jump-hash";
import type { RequestLocation } from "../../src/routing/region-locator";
import { nearestRegion } from "../../src/routing/region-locator";
import { shardFor } from "../../src/routing/shard-router";

/** The HttpError `fn` throws (fails the test otherwise). */
function httpErrorOf(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (error) {
    if (error instanceof HttpError) return error;
    throw new Error(`expected an HttpError, got ${String(error)}`);
  }
  throw new Error("expected an HttpError, but nothing was thrown");
}

describe("roomNameSchema: 1 to 128 characters of A-Z a-z 0-9 . _ ~ : -, not . or ..", () => {
  it.each([
    "a",
    "room-1",
    "team:doc-42",
    "A.b_c~d:e-f",
    "...",
    ".hidden",
    "a..b",
    "0",
    "x".repeat(MAX_ROOM_NAME_LENGTH),
  ])("accepts %j", (name) => {
    expect(roomNameSchema.safeParse(name).success).toBe(true);
  });

  it("a name of 128 characters is accepted and one of 129 is rejected", () => {
    expect(MAX_ROOM_NAME_LENGTH).toBe(128);
    expect(roomNameSchema.safeParse("r".repeat(128)).success).toBe(true);
    const result = roomNameSchema.safeParse("r".repeat(129));
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toBe("room name is longer than 128 characters");
  });

  it.each([
    ["the empty name", "", "room name is empty"],
    ["'.'", ".", "room name may not be . or .."],
    ["'..'", "..", "room name may not be . or .."],
    ["a slash", "a/b", "may contain only"],
    ["a lone slash", "/", "may contain only"],
    ["a space", "my room", "may contain only"],
    ["a percent escape", "my%20room", "may contain only"],
    ["a backslash", "a\\b", "may contain only"],
    ["a query character", "a?b", "may contain only"],
    ["non-ASCII letters", "café", "may contain only"],
    ["an emoji", "room🎉", "may contain only"],
    ["a newline", "a\nb", "may contain only"],
  ])("rejects %s", (_what, name, message) => {
    const result = roomNameSchema.safeParse(name);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message).join(" | ")).toContain(message);
  });
});

describe("parseRoomName", () => {
  it("returns a valid name", () => {
    expect(parseRoomName("team:doc-42")).toBe("team:doc-42");
  });

  it("a bad or missing name is a 400 invalid_room_name naming the field room", () => {
    for (const raw of [undefined, "", "a b", "x".repeat(129)]) {
      const error = httpErrorOf(() => parseRoomName(raw));
      expect(error.status).toBe(400);
      expect(error.code).toBe("invalid_room_name");
      expect(error.field).toBe("room");
      expect(error.message).toMatch(/room name/);
      expect(error.toBody()).toEqual({
        error: { code: "invalid_room_name", message: error.message, field: "room" },
      });
    }
  });

  it("shard upgrade headers are validated with the same room rule, the region enum and a shard index", () => {
    const identity = JSON.stringify({ userId: "u", rights: ["read"], expiresAt: null });
    expect(
      shardUpgradeHeadersSchema.safeParse({ room: "ok", region: "weur", shard: "2", identity })
        .success,
    ).toBe(true);
    expect(
      shardUpgradeHeadersSchema.safeParse({ room: "..", region: "weur", shard: "2", identity })
        .success,
    ).toBe(false);
    expect(
      shardUpgradeHeadersSchema.safeParse({ room: "ok", region: "mars", shard: "2", identity })
        .success,
    ).toBe(false);
    expect(
      shardUpgradeHeadersSchema.safeParse({ room: "ok", region: "weur", shard: "2" }).success,
    ).toBe(false);
    expect(
      shardUpgradeHeadersSchema.safeParse({
        room: "ok",
        region: "weur",
        shard: "2",
        identity: "{nope",
      }).success,
    ).toBe(false);
    for (const shard of [undefined, null, "", "-1", "x", "1024", "1.5"]) {
      expect(
        shardUpgradeHeadersSchema.safeParse({ room: "ok", region: "weur", shard, identity })
          .success,
        `shard ${shard}`,
      ).toBe(false);
    }
    const noRights = JSON.stringify({ userId: "u", expiresAt: null });
    expect(
      shardUpgradeHeadersSchema.safeParse({
        room: "ok",
        region: "weur",
        shard: "2",
        identity: noRights,
      }).success,
    ).toBe(false);
  });
});

describe("HttpError", () => {
  it("toBody leaves the field out when there is none", () => {
    const error = new HttpError(404, "not_found", "no such room");
    expect(error.toBody()).toEqual({ error: { code: "not_found", message: "no such room" } });
    expect(error.headers).toEqual({});
    expect(error.name).toBe("HttpError");
  });
});

describe("assertValidHandshake (RFC 6455 4.2.1)", () => {
  const KEY = "dGhlIHNhbXBsZSBub25jZQ=="; // the RFC's sample nonce

  function headers(overrides: Record<string, string | null> = {}): Headers {
    const base: Record<string, string | null> = {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": KEY,
      "sec-websocket-version": "13",
      ...overrides,
    };
    const result = new Headers();
    for (const [name, value] of Object.entries(base)) if (value !== null) result.set(name, value);
    return result;
  }

  it("accepts a valid handshake", () => {
    expect(() => assertValidHandshake("GET", headers())).not.toThrow();
  });

  it("accepts Connection lists and any case", () => {
    for (const connection of ["keep-alive, Upgrade", "upgrade", "UPGRADE,keep-alive"]) {
      expect(() => assertValidHandshake("GET", headers({ connection }))).not.toThrow();
    }
  });

  it("wantsWebSocket reads the Upgrade header case-insensitively", () => {
    expect(wantsWebSocket(headers({ upgrade: "WebSocket" }))).toBe(true);
    expect(wantsWebSocket(headers({ upgrade: null }))).toBe(false);
    expect(wantsWebSocket(headers({ upgrade: "h2c" }))).toBe(false);
  });

  it("a method other than GET is a 400 naming the method", () => {
    const error = httpErrorOf(() => assertValidHandshake("POST", headers()));
    expect(error.status).toBe(400);
    expect(error.code).toBe("bad_handshake");
    expect(error.field).toBe("method");
    expect(error.message).toContain("POST");
  });

  it.each([
    ["missing", null],
    ["without upgrade", "keep-alive"],
    ["with upgrade only as a substring", "upgraded"],
  ])("a Connection header %s is a 400", (_what, connection) => {
    const error = httpErrorOf(() => assertValidHandshake("GET", headers({ connection })));
    expect(error.status).toBe(400);
    expect(error.field).toBe("connection");
  });

  it("a missing Sec-WebSocket-Key is a 400", () => {
    const error = httpErrorOf(() =>
      assertValidHandshake("GET", headers({ "sec-websocket-key": null })),
    );
    expect(error.status).toBe(400);
    expect(error.field).toBe("sec-websocket-key");
    expect(error.message).toMatch(/missing/);
  });

  it.each([
    "abc",
    "dGhlIHNhbXBsZSBub25jZQ", // no padding
    "dGhlIHNhbXBsZSBub25jZQ=", // wrong padding
    "dGhlIHNhbXBsZSBub25jZSE=", // 17 bytes
    "dGhlIHNhbXBsZSBub25j!Q==",
  ])("an invalid Sec-WebSocket-Key %j is a 400", (key) => {
    const error = httpErrorOf(() =>
      assertValidHandshake("GET", headers({ "sec-websocket-key": key })),
    );
    expect(error.status).toBe(400);
    expect(error.field).toBe("sec-websocket-key");
    expect(error.message).toMatch(/base64 of 16 bytes/);
  });

  it("a missing Sec-WebSocket-Version is a 426 that advertises version 13", () => {
    const error = httpErrorOf(() =>
      assertValidHandshake("GET", headers({ "sec-websocket-version": null })),
    );
    expect(error.status).toBe(426);
    expect(error.code).toBe("unsupported_websocket_version");
    expect(error.field).toBe("sec-websocket-version");
    expect(error.headers["Sec-WebSocket-Version"]).toBe("13");
    expect(error.message).toMatch(/is missing/);
  });

  it.each(["8", "12", "14", "13, 8"])(
    "Sec-WebSocket-Version %j is a 426 that advertises version 13",
    (version) => {
      const error = httpErrorOf(() =>
        assertValidHandshake("GET", headers({ "sec-websocket-version": version })),
      );
      expect(error.status).toBe(426);
      expect(error.headers).toMatchObject({ "Sec-WebSocket-Version": "13" });
      expect(error.message).toContain(`"${version}" is not supported`);
    },
  );
});

const PARIS: RequestLocation = { latitude: "48.8566", longitude: "2.3522", continent: "EU" };
const TOKYO: RequestLocation = { latitude: "35.6762", longitude: "139.6503", continent: "AS" };
const AUSTIN: RequestLocation = { latitude: "30.2672", longitude: "-97.7431", continent: "NA" };

function config(input: Partial<HaloConfigInput> & Pick<HaloConfigInput, "shards">) {
  return parseConfig(input);
}

const ALL_REGIONS = config({
  shards: Object.fromEntries(REGION_NAMES.map((r) => [r, 1])),
  defaultRegion: "enam",
});

describe("resolveRegion", () => {
  const devWithOverride = config({
    environment: "development",
    allowRegionOverride: true,
    shards: { weur: 1, wnam: 2 },
  });

  it("an override is refused when the configuration does not allow it", () => {
    const error = httpErrorOf(() =>
      resolveRegion("weur", PARIS, config({ shards: { weur: 1, wnam: 1 } })),
    );
    expect(error.status).toBe(400);
    expect(error.code).toBe("region_override_disabled");
    expect(error.field).toBe("region");
  });

  it("an allowed override picks that region whatever the location", () => {
    expect(resolveRegion("wnam", PARIS, devWithOverride)).toBe("wnam");
  });

  it("an override naming no region is a 400 listing the configured ones", () => {
    const error = httpErrorOf(() => resolveRegion("mars", PARIS, devWithOverride));
    expect(error.status).toBe(400);
    expect(error.code).toBe("region_not_configured");
    expect(error.field).toBe("region");
    expect(error.message).toContain('"mars"');
    expect(error.message).toContain("weur, wnam");
  });

  it("an override naming a real region that is not configured is a 400", () => {
    const error = httpErrorOf(() => resolveRegion("apac", TOKYO, devWithOverride));
    expect(error.code).toBe("region_not_configured");
    expect(error.message).toContain('"apac"');
  });

  it.each([
    ["Paris", PARIS, "weur"],
    ["Tokyo", TOKYO, "apac"],
    ["Austin", AUSTIN, "enam"],
    ["Seattle", { latitude: 47.6, longitude: -122.3 }, "wnam"],
    ["Warsaw", { latitude: 52.23, longitude: 21.01 }, "eeur"],
    ["Sydney", { latitude: -33.87, longitude: 151.21 }, "oc"],
    ["São Paulo", { latitude: -23.55, longitude: -46.63 }, "sam"],
    ["Dubai", { latitude: 25.2, longitude: 55.27 }, "me"],
    ["Kinshasa", { latitude: -4.44, longitude: 15.27 }, "afr"],
  ] as Array<[string, RequestLocation, string]>)(
    "%s goes to the nearest configured region (%s) when all are configured",
    (_city, location, region) => {
      expect(resolveRegion(undefined, location, ALL_REGIONS)).toBe(region);
    },
  );

  it("Austin goes to wnam when enam is not configured", () => {
    const cfg = config({ shards: { weur: 1, wnam: 1, apac: 1 } });
    expect(resolveRegion(undefined, AUSTIN, cfg)).toBe("wnam");
  });

  it("Tokyo goes to wnam when only the Americas and Europe are configured", () => {
    const cfg = config({ shards: { weur: 1, wnam: 1, sam: 1 } });
    expect(resolveRegion(undefined, TOKYO, cfg)).toBe("wnam");
  });

  it("numeric coordinates work as well as cf's strings", () => {
    expect(resolveRegion(undefined, { latitude: 48.85, longitude: 2.35 }, ALL_REGIONS)).toBe(
      "weur",
    );
  });

  it.each([
    ["EU", "weur"],
    ["AS", "apac"],
    ["NA", "wnam"],
    ["SA", "sam"],
    ["OC", "oc"],
    ["AF", "afr"],
  ])("a request with only continent %s goes to %s", (continent, region) => {
    expect(resolveRegion(undefined, { continent }, ALL_REGIONS)).toBe(region);
  });

  it("coordinates win over the continent", () => {
    expect(resolveRegion(undefined, { ...TOKYO, continent: "EU" }, ALL_REGIONS)).toBe("apac");
  });

  it("unparseable coordinates fall back to the continent", () => {
    const location = { latitude: "unknown", longitude: "2.35", continent: "OC" };
    expect(resolveRegion(undefined, location, ALL_REGIONS)).toBe("oc");
  });

  it("no location at all goes to the default region", () => {
    expect(resolveRegion(undefined, undefined, ALL_REGIONS)).toBe("enam");
    expect(resolveRegion(undefined, {}, ALL_REGIONS)).toBe("enam");
    expect(resolveRegion(undefined, { continent: "XX" }, ALL_REGIONS)).toBe("enam");
    const firstIsDefault = config({ shards: { apac: 1, weur: 1 } });
    expect(resolveRegion(undefined, undefined, firstIsDefault)).toBe("apac");
  });

  it("nearestRegion falls back when there are no candidates", () => {
    expect(nearestRegion(PARIS, [], "oc")).toBe("oc");
  });
});

describe("parseStateVector", () => {
  function stateVectorBytes(): Uint8Array {
    // A clientID of 2^32 - 1 encodes as ff ff ff ff 0f: its base64 holds '/' characters.
    const doc = new Y.Doc();
    doc.clientID = 0xffff_ffff;
    doc.getText("t").insert(0, "hello, world");
    return Y.encodeStateVector(doc);
  }

  it("no since parameter is null", () => {
    expect(parseStateVector(undefined, Y.decodeStateVector)).toBeNull();
  });

  it("decodes standard base64 of a Yjs state vector", () => {
    const bytes = stateVectorBytes();
    const base64 = Buffer.from(bytes).toString("base64");
    expect(base64).toMatch(/[+/]/);
    const parsed = parseStateVector(base64, Y.decodeStateVector);
    expect(parsed).toEqual(bytes);
    expect(Y.decodeStateVector(parsed as Uint8Array).get(0xffff_ffff)).toBe(12);
  });

  it("decodes URL-safe base64, with or without padding", () => {
    const bytes = stateVectorBytes();
    const urlSafe = Buffer.from(bytes).toString("base64url"); // no padding
    expect(urlSafe).toMatch(/[-_]/);
    expect(parseStateVector(urlSafe, Y.decodeStateVector)).toEqual(bytes);
    const padded = urlSafe.padEnd(Math.ceil(urlSafe.length / 4) * 4, "=");
    expect(parseStateVector(padded, Y.decodeStateVector)).toEqual(bytes);
  });

  it("the state vector of an empty document is valid", () => {
    const empty = Y.encodeStateVector(new Y.Doc());
    const base64 = Buffer.from(empty).toString("base64");
    expect(parseStateVector(base64, Y.decodeStateVector)).toEqual(empty);
  });

  it.each([
    ["not base64", "!!!"],
    ["base64 of something that is not a state vector", Buffer.from([5]).toString("base64")],
    ["an impossible base64 length", "AAAAA"],
    ["a truncated state vector", Buffer.from([1, 0xff, 0xff]).toString("base64")],
  ])("%s is a 400 invalid_state_vector naming the field since", (_what, raw) => {
    const error = httpErrorOf(() => parseStateVector(raw, Y.decodeStateVector));
    expect(error.status).toBe(400);
    expect(error.code).toBe("invalid_state_vector");
    expect(error.field).toBe("since");
  });
});

describe("shardFor", () => {
  const cfg = config({ shards: { weur: 8, apac: 1, wnam: 3 } });

  it("names the shard shard:{region}:{index}", () => {
    const address = shardFor("team:doc-42", "weur", cfg);
    expect(address.region).toBe("weur");
    expect(address.name).toBe(`shard:weur:${address.index}`);
    expect(address.index).toBe(shardIndexFor("team:doc-42", 8));
  });

  it("is stable across calls and configuration instances", () => {
    const again = config({ shards: { wnam: 3, apac: 1, weur: 8 } });
    for (const room of ["a", "b", "team:doc-42", "x".repeat(128)]) {
      expect(shardFor(room, "weur", cfg)).toEqual(shardFor(room, "weur", again));
      expect(shardFor(room, "wnam", cfg)).toEqual(shardFor(room, "wnam", cfg));
    }
  });

  it("keeps every index within the region's shard count and uses all of them", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const { index, name } = shardFor(`room-${i}`, "weur", cfg);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(8);
      expect(Number.isInteger(index)).toBe(true);
      expect(name).toMatch(/^shard:weur:[0-7]$/);
      seen.add(index);
    }
    expect(seen.size).toBe(8);
  });

  it("a region with one shard always uses shard 0", () => {
    for (const room of ["a", "b", "c", "zzz"])
      expect(shardFor(room, "apac", cfg).name).toBe("shard:apac:0");
  });

  it("a region that is not configured is a ConfigError", () => {
    expect(() => shardFor("a", "oc", cfg)).toThrow(ConfigError);
  });
});
