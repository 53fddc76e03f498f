import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { type DevServer, startWranglerDev } from "../support/wrangler-dev";

/**
 * Replication between regions under `wrangler dev` with the shipped configuration: each region
 * is its own set of shard Durable Objects, and stock y-websocket clients pick theirs with
 * `?region=`. Clients in three regions of one room see each other's edits and cursors, and the
 * REST presence query sees the members of every region.
 */
type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

const REGIONS = ["wnam", "weur", "apac"] as const;
let server: DevServer;
const providers: WebsocketProvider[] = [];

function clientIn(region: string, room: string) {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(server.roomsUrl, room, doc, {
    WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
    disableBc: true, // no BroadcastChannel shortcut between providers of one process
    params: { region, user: `${region}-user` },
  });
  providers.push(provider);
  return { region, doc, provider, text: doc.getText("t") };
}

async function until(
  check: () => Promise<boolean> | boolean,
  ms: number,
  what: string,
): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

beforeAll(async () => {
  server = await startWranglerDev();
});

afterAll(async () => {
  for (const provider of providers) provider.destroy();
  await server?.stop();
});

describe("replication between regions against wrangler dev", () => {
  it("stock clients in three regions of one room see each other's edits and awareness", async () => {
    const room = "e2e-replicated";
    const clients = REGIONS.map((region) => clientIn(region, room));
    await until(() => clients.every((c) => c.provider.synced), 15_000, "all three to sync");
    for (const c of clients) {
      c.provider.awareness.setLocalStateField("user", { name: `in ${c.region}` });
      c.text.insert(0, `[${c.region}]`);
    }
    await until(
      () =>
        clients.every((c) => REGIONS.every((r) => c.text.toString().includes(`[${r}]`))) &&
        new Set(clients.map((c) => c.text.toString())).size === 1,
      15_000,
      "every client to hold every region's edit, in one order",
    );
    const names = (c: (typeof clients)[number]) =>
      [...c.provider.awareness.getStates().values()]
        .map((state) => (state.user as { name?: string } | undefined)?.name)
        .filter((name): name is string => name !== undefined)
        .sort();
    await until(
      () => clients.every((c) => names(c).length === 3),
      15_000,
      "every client to see the cursors of the other regions",
    );
    expect(names(clients[0] as (typeof clients)[number])).toEqual([
      "in apac",
      "in weur",
      "in wnam",
    ]);

    // Presence from any region lists every region's member with its region.
    const response = await fetch(
      `${server.httpUrl}/v1/rooms/${room}/presence?region=weur&consistency=all`,
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      members: Array<{ userId: string; region: string }>;
      sources: Array<{ region: string; answered?: boolean }>;
    };
    expect(body.members.map((m) => [m.userId, m.region]).sort()).toEqual([
      ["apac-user", "apac"],
      ["weur-user", "weur"],
      ["wnam-user", "wnam"],
    ]);
    expect(body.sources.filter((s) => s.region !== "weur").every((s) => s.answered)).toBe(true);

    // One leaves in apac: the others' stock clients drop its cursor.
    const [west, europe, asia] = clients as [
      (typeof clients)[number],
      (typeof clients)[number],
      (typeof clients)[number],
    ];
    const asiaId = asia.doc.clientID;
    asia.provider.destroy();
    await until(
      () =>
        !west.provider.awareness.getStates().has(asiaId) &&
        !europe.provider.awareness.getStates().has(asiaId),
      15_000,
      "the departed client's cursor to vanish in the other regions",
    );
  });
});
