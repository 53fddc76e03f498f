import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { type DevServer, startWranglerDev } from "../support/wrangler-dev";

/**
 * Region membership under `wrangler dev` with the shipped defaults (wrangler.toml: a round a
 * second, suspected after 5 s, dead a few seconds later): a directory stopped through the
 * fault-injection route is declared dead, new stock clients are routed around its region, and
 * lifting the fault brings it back.
 */
type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

const ADMIN = "e2e-admin-token-membership";
const REGIONS = ["apac", "weur", "wnam"];
let server: DevServer;
const providers: WebsocketProvider[] = [];

type RegionsBody = {
  answeredBy: string;
  clientRegion: string;
  regions: Array<{ region: string; status: string; incarnation: number }>;
};

async function regions(from: string): Promise<RegionsBody> {
  const response = await fetch(`${server.httpUrl}/v1/regions?region=${from}`);
  expect(response.status).toBe(200);
  return (await response.json()) as RegionsBody;
}

const statusIn = (body: RegionsBody, region: string) =>
  body.regions.find((row) => row.region === region)?.status;

async function until(
  check: () => Promise<boolean> | boolean,
  ms: number,
  what: string,
): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function faults(method: "PUT" | "DELETE", body?: unknown): Promise<void> {
  const response = await fetch(`${server.httpUrl}/v1/admin/faults`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  expect(response.status).toBe(200);
}

beforeAll(async () => {
  server = await startWranglerDev(undefined, { HALO_ADMIN_TOKEN: ADMIN });
});

afterAll(async () => {
  for (const provider of providers) provider.destroy();
  await server?.stop();
});

describe("region membership against wrangler dev", () => {
  it("a stopped region is declared dead everywhere, new clients go around it, and it comes back", async () => {
    await until(
      async () => {
        const body = await regions("wnam");
        return REGIONS.every((r) => statusIn(body, r) === "alive");
      },
      20_000,
      "the three directories to find each other",
    );
    expect((await regions("apac")).clientRegion).toBe("apac");

    await faults("PUT", { stopped: ["apac"] });
    await until(
      async () => {
        const [wnam, weur] = await Promise.all([regions("wnam"), regions("weur")]);
        return statusIn(wnam, "apac") === "dead" && statusIn(weur, "apac") === "dead";
      },
      30_000,
      "wnam and weur to declare apac dead",
    );

    // A stock client that asks for apac is served by the nearest live region instead.
    const doc = new Y.Doc();
    const provider = new WebsocketProvider(
      `${server.httpUrl.replace("http", "ws")}/v1/rooms`,
      "e2e-around",
      doc,
      {
        WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
        disableBc: true,
        params: { region: "apac" },
      },
    );
    providers.push(provider);
    await until(() => provider.synced, 10_000, "the client to sync");
    doc.getText("t").insert(0, "served elsewhere");
    const summary = (await (
      await fetch(`${server.httpUrl}/v1/rooms/e2e-around?region=apac`)
    ).json()) as { region: string; connections: number };
    expect(summary.region).not.toBe("apac");
    expect(summary.connections).toBe(1);

    await faults("DELETE");
    await until(
      async () => statusIn(await regions("wnam"), "apac") === "alive",
      20_000,
      "apac to come back",
    );
    expect((await regions("apac")).clientRegion).toBe("apac");
  });
});
