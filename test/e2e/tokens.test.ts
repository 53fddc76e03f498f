import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { type DevServer, startWranglerDev } from "../support/wrangler-dev";

type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

const SECRET = "e2e-test-secret-not-for-production";
let server: DevServer;
const providers: WebsocketProvider[] = [];

async function token(sub: string, room: string, expiresInSeconds = 600): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ cap: { [room]: ["read", "write", "presence"] } })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime(now + expiresInSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

/** Opens a raw socket and reports how the server answered the handshake. */
function handshake(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on("open", () => {
      ws.close();
      resolve({ status: 101, body: "" });
    });
    ws.on("unexpected-response", (_request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    ws.on("error", (error) => reject(error));
  });
}

beforeAll(async () => {
  server = await startWranglerDev(undefined, { HALO_TOKEN_SECRET: SECRET });
});

afterAll(async () => {
  for (const provider of providers) provider.destroy();
  await server?.stop();
});

describe("tokens against wrangler dev", () => {
  it("lets stock y-websocket clients with valid tokens edit together", async () => {
    const docs = [new Y.Doc(), new Y.Doc()];
    for (const [i, doc] of docs.entries()) {
      const params = { token: await token(`user-${i}`, "e2e-token-room") };
      providers.push(
        new WebsocketProvider(server.roomsUrl, "e2e-token-room", doc, {
          WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
          disableBc: true,
          params,
        }),
      );
    }
    docs[0]?.getText("t").insert(0, "signed in");
    const deadline = Date.now() + 10_000;
    while (docs[1]?.getText("t").toString() !== "signed in") {
      if (Date.now() > deadline) throw new Error("the edit did not arrive");
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it("refuses a bad token and an expired one with a clear 401", async () => {
    const bad = await handshake(`${server.roomsUrl}/e2e-token-room?token=not-a-jwt`);
    expect(bad.status).toBe(401);
    expect(JSON.parse(bad.body)).toMatchObject({
      error: { code: "invalid_token", field: "token" },
    });
    const expired = await handshake(
      `${server.roomsUrl}/e2e-token-room?token=${await token("late", "e2e-token-room", -60)}`,
    );
    expect(expired.status).toBe(401);
    expect(JSON.parse(expired.body)).toMatchObject({ error: { code: "expired_token" } });
  });
});
