import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import {
  errorBodySchema,
  healthSchema,
  historyResponseSchema,
  multiRoomResponseSchema,
  presenceResponseSchema,
  regionsResponseSchema,
  roomSummarySchema,
} from "../../src/http/api-schemas";
import { eventually, TestClient } from "./client";

async function body<T extends z.ZodType>(schema: T, path: string, init?: RequestInit) {
  const response = await SELF.fetch(`http://halo.test${path}`, init);
  const parsed = schema.safeParse(await response.json());
  expect(parsed.error?.issues ?? [], `${path} answers as documented`).toEqual([]);
  return { status: response.status, data: parsed.data as z.infer<T> };
}

describe("OpenAPI", () => {
  it("serves an OpenAPI 3.1 document of every REST route, with the query parameters the routes validate", async () => {
    const response = await SELF.fetch("http://halo.test/v1/openapi.json");
    expect(response.status).toBe(200);
    const document = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { parameters?: Array<{ name: string }> }>>;
    };
    expect(document.openapi).toBe("3.1.0");
    expect(Object.keys(document.paths).sort()).toEqual([
      "/healthz",
      "/v1/presence/query",
      "/v1/regions",
      "/v1/rooms/{room}",
      "/v1/rooms/{room}/document",
      "/v1/rooms/{room}/presence",
      "/v1/rooms/{room}/presence/history",
    ]);
    const presenceParameters = document.paths["/v1/rooms/{room}/presence"]?.get?.parameters?.map(
      (p) => p.name,
    );
    expect(presenceParameters).toEqual(
      expect.arrayContaining([
        "room",
        "view",
        "userId",
        "memberRegion",
        "status",
        "limit",
        "cursor",
        "count",
      ]),
    );
  });

  it("serves a page for people that lists every operation", async () => {
    const response = await SELF.fetch("http://halo.test/v1/docs");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/text\/html/);
    const html = await response.text();
    for (const operation of [
      "GET /v1/rooms/{room}/presence",
      "POST /v1/presence/query",
      "GET /healthz",
    ])
      expect(html).toContain(operation);
  });

  it("every documented response schema matches what the routes answer", async () => {
    const room = "openapi-room";
    const client = await TestClient.connect(room, "?user=ada");
    client.setAwareness({ name: "ada" }, 1);
    await eventually(() => client.awareness.size === 1, 2000, "echo");

    expect((await body(healthSchema, "/healthz")).status).toBe(200);
    expect((await body(regionsResponseSchema, "/v1/regions")).data.answeredBy).toBe("wnam");
    expect((await body(roomSummarySchema, `/v1/rooms/${room}`)).data.connections).toBe(1);
    for (const query of ["", "?view=users", "?count=1", "?limit=1&status=present"]) {
      expect(
        (await body(presenceResponseSchema, `/v1/rooms/${room}/presence${query}`)).status,
      ).toBe(200);
    }
    const history = await body(historyResponseSchema, `/v1/rooms/${room}/presence/history`);
    expect(history.data.events.length).toBeGreaterThan(0);
    const many = await body(multiRoomResponseSchema, "/v1/presence/query", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rooms: [room, "openapi-empty"], view: "members" }),
    });
    expect(Object.keys(many.data.results)).toEqual([room, "openapi-empty"]);
    const bad = await body(errorBodySchema, `/v1/rooms/${room}/presence?limit=0`);
    expect(bad.status).toBe(400);
    client.close();
  });
});
