import { z } from "zod";
import {
  historyQuerySchema,
  multiRoomQuerySchema,
  presenceQuerySchema,
} from "../presence/presence-query";
import {
  errorBodySchema,
  healthSchema,
  historyResponseSchema,
  multiRoomResponseSchema,
  presenceResponseSchema,
  regionsResponseSchema,
  roomSummarySchema,
} from "./api-schemas";

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema (input side for parameters and bodies, output side for responses). */
function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" });
  return rest;
}

/** Query parameters from a zod object schema, one per property. */
function queryParameters(schema: z.ZodObject): JsonSchema[] {
  return Object.entries(schema.shape).map(([name, property]) => ({
    name,
    in: "query",
    required: !(property as z.ZodType).safeParse(undefined).success,
    schema: schemaOf(property as z.ZodType, "input"),
  }));
}

const commonParameters: JsonSchema[] = [
  {
    name: "token",
    in: "query",
    required: false,
    description: "A JWT, for clients that cannot set Authorization (browsers' WebSockets)",
    schema: { type: "string" },
  },
  {
    name: "region",
    in: "query",
    required: false,
    description: "Pick the region (only where allowRegionOverride is on; development)",
    schema: { type: "string" },
  },
];

const roomParameter: JsonSchema = {
  name: "room",
  in: "path",
  required: true,
  schema: { type: "string", pattern: "^[A-Za-z0-9._~:-]{1,128}$" },
};

function json(schema: z.ZodType, description: string): JsonSchema {
  return { description, content: { "application/json": { schema: schemaOf(schema, "output") } } };
}

const errors: JsonSchema = {
  "400": json(errorBodySchema, "A bad request; `field` names what was wrong"),
  "401": json(errorBodySchema, "No valid token"),
  "403": json(errorBodySchema, "The token grants no read right in the room"),
  "429": json(errorBodySchema, "Over limits.restRequestsPerSecond; see Retry-After"),
};

/** The OpenAPI 3.1 document of the REST API, generated from the schemas the routes use. */
export function openApiDocument(): JsonSchema {
  return {
    openapi: "3.1.0",
    info: {
      title: "Halo",
      version: "0.1.0",
      description:
        "Presence and Yjs document sync. Rooms are joined over WebSocket (GET /v1/rooms/{room} with Upgrade: websocket, the y-websocket protocol); these are the REST endpoints.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
    security: [{ bearer: [] }],
    paths: {
      "/healthz": {
        get: {
          summary: "Health and configured regions",
          security: [],
          responses: { "200": json(healthSchema, "The Worker is serving") },
        },
      },
      "/v1/regions": {
        get: {
          summary:
            "The region-membership table as the nearest directory sees it, and the region a new client from here would get",
          security: [],
          parameters: commonParameters.filter((p) => p.name === "region"),
          responses: {
            "200": json(regionsResponseSchema, "The table"),
            "400": errors["400"],
            "429": errors["429"],
            "503": json(errorBodySchema, "No directory near the caller answered"),
          },
        },
      },
      "/v1/rooms/{room}": {
        get: {
          summary: "A room's summary (or, with Upgrade: websocket, join it)",
          parameters: [roomParameter, ...commonParameters],
          responses: { "200": json(roomSummarySchema, "The room"), ...errors },
        },
      },
      "/v1/rooms/{room}/presence": {
        get: {
          summary: "Members or users of a room, paged, or their counts",
          parameters: [roomParameter, ...commonParameters, ...queryParameters(presenceQuerySchema)],
          responses: { "200": json(presenceResponseSchema, "One page, or the counts"), ...errors },
        },
      },
      "/v1/rooms/{room}/presence/history": {
        get: {
          summary: "Presence events of a room, oldest first",
          parameters: [roomParameter, ...commonParameters, ...queryParameters(historyQuerySchema)],
          responses: { "200": json(historyResponseSchema, "One page of events"), ...errors },
        },
      },
      "/v1/rooms/{room}/document": {
        get: {
          summary: "The room's document as one Yjs update",
          parameters: [
            roomParameter,
            ...commonParameters,
            {
              name: "since",
              in: "query",
              required: false,
              description: "A base64 Yjs state vector: only what its holder lacks",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": {
              description: "A Yjs update",
              content: {
                "application/octet-stream": { schema: { type: "string", format: "binary" } },
              },
            },
            ...errors,
          },
        },
      },
      "/v1/presence/query": {
        post: {
          summary: "Presence of many rooms in one call",
          parameters: commonParameters,
          requestBody: {
            required: true,
            content: { "application/json": { schema: schemaOf(multiRoomQuerySchema, "input") } },
          },
          responses: { "200": json(multiRoomResponseSchema, "One result per room"), ...errors },
        },
      },
    },
  };
}

/** A readable page for people: every operation, its parameters and responses, from the document. */
export function openApiPage(document: JsonSchema): string {
  const htmlText = (text: string) =>
    text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const paths = document.paths as Record<string, Record<string, JsonSchema>>;
  const sections = Object.entries(paths).flatMap(([path, operations]) =>
    Object.entries(operations).map(([method, operation]) => {
      const parameters = ((operation.parameters as JsonSchema[] | undefined) ?? [])
        .map(
          (p) =>
            `<li><code>${htmlText(String(p.name))}</code> (${htmlText(String(p.in))}${p.required ? ", required" : ""})${p.description ? `: ${htmlText(String(p.description))}` : ""}</li>`,
        )
        .join("");
      const responses = Object.entries(operation.responses as Record<string, JsonSchema>)
        .map(([status, r]) => `<li><code>${status}</code> ${htmlText(String(r.description))}</li>`)
        .join("");
      return `<section><h2><code>${method.toUpperCase()} ${htmlText(path)}</code></h2><p>${htmlText(String(operation.summary))}</p>${parameters ? `<h3>Parameters</h3><ul>${parameters}</ul>` : ""}<h3>Responses</h3><ul>${responses}</ul></section>`;
    }),
  );
  const info = document.info as { title: string; description: string };
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${htmlText(info.title)} API</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}code{background:#f4f4f4;padding:0 .2em}section{border-top:1px solid #ddd;margin-top:1.5rem}</style></head><body><h1>${htmlText(info.title)} API</h1><p>${htmlText(info.description)}</p><p>Machine-readable: <a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI 3.1).</p>${sections.join("")}</body></html>`;
}
