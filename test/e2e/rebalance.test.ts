import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import {
  connect,
  type HaloClient,
  type Room,
  type WebSocketConstructor,
} from "../../src/client/index";
import { homeAndBackup } from "../../src/replication/home-region";
import { shardIndexFor } from "../../src/routing/jump-hash";
import { type DevServer, freshPersistDir, startWranglerDev } from "../support/wrangler-dev";

/**
 * Resizing wnam's shards under `wrangler dev` with a stock `y-websocket` provider and an SDK
 * client in each of many rooms: the moved rooms' clients reconnect by themselves (the SDK
 * shows `moved`, the stock provider simply reconnects and resyncs), every edit arrives on both
 * sides, and the SDK sees no member leave.
 */
type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

const ADMIN = "e2e-rebalance-admin-token";
const ROOMS = Array.from({ length: 10 }, (_, i) => `e2e-rebalance-${i}`);
let server: DevServer;
const providers: WebsocketProvider[] = [];
const sdks: HaloClient[] = [];

beforeAll(async () => {
  server = await startWranglerDev(undefined, { HALO_ADMIN_TOKEN: ADMIN });
});

afterAll(async () => {
  for (const provider of providers) provider.destroy();
  for (const sdk of sdks) sdk.close();
  await server?.stop();
});

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function resize(shards: number): Promise<void> {
  const response = await fetch(`${server.httpUrl}/v1/admin/regions/wnam/shards`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ shards }),
  });
  expect(response.status).toBe(200);
}

interface Pair {
  room: string;
  stock: { doc: Y.Doc; provider: WebsocketProvider; closes: number };
  sdk: { room: Room; doc: Y.Doc; statuses: string[]; leaves: string[] };
}

function open(room: string, i: number): Pair {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(server.roomsUrl, room, doc, {
    WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
    disableBc: true,
    // A stable identity, as a token gives: an anonymous reconnect is a new user, whose old
    // member leaves when its grace ends (a move or not).
    params: { user: `stock-${i}` },
  });
  provider.awareness.setLocalStateField("user", { name: `stock-${i}` });
  providers.push(provider);
  const stock = { doc, provider, closes: 0 };
  provider.on("connection-close", () => {
    stock.closes++;
  });
  const client = connect({
    url: server.httpUrl,
    user: `sdk-${i}`,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
  });
  sdks.push(client);
  const sdkDoc = new Y.Doc();
  const handle = client.room(room, { doc: sdkDoc, presence: { name: `sdk-${i}` } });
  const sdk = { room: handle, doc: sdkDoc, statuses: [] as string[], leaves: [] as string[] };
  handle.on("status", (status) => sdk.statuses.push(status));
  handle.presence.on("leave", (member, reason) =>
    sdk.leaves.push(`${member.userId}:${member.clientId}:${reason}:${Date.now()}`),
  );
  return { room, stock, sdk };
}

const text = (doc: Y.Doc) => doc.getText("t").toString();

describe("resizing under wrangler dev", () => {
  it("stock and SDK clients follow their rooms from 4 to 5 to 3 shards; no edit lost, no leave", async () => {
    const pairs = ROOMS.map(open);
    for (const [i, pair] of pairs.entries()) {
      await until(() => pair.stock.provider.synced, `stock ${pair.room} synced`);
      pair.stock.doc.getText("t").insert(0, `s${i};`);
      await until(() => text(pair.sdk.doc) === `s${i};`, `${pair.room} at the SDK`);
    }
    for (const [from, to] of [
      [4, 5],
      [5, 3],
    ] as const) {
      const moving = new Set(ROOMS.filter((r) => shardIndexFor(r, from) !== shardIndexFor(r, to)));
      expect(moving.size).toBeGreaterThan(0);
      const closesBefore = pairs.map((pair) => pair.stock.closes);
      for (const pair of pairs) pair.sdk.statuses.length = 0;
      await resize(to);
      for (const [i, pair] of pairs.entries()) {
        if (!moving.has(pair.room)) continue;
        await until(() => pair.sdk.statuses.includes("moved"), `SDK in ${pair.room} moved`);
        await until(
          () =>
            (pair.stock.closes > (closesBefore[i] ?? 0) && pair.stock.provider.wsconnected) ===
            true,
          `stock in ${pair.room} back`,
        );
        await until(() => pair.sdk.room.status === "connected", `SDK in ${pair.room} back`);
      }
      // Both sides keep editing after the move, and see each other's edits.
      for (const [i, pair] of pairs.entries()) {
        pair.stock.doc.getText("t").insert(text(pair.stock.doc).length, `a${to}s${i};`);
        pair.sdk.doc.getText("t").insert(0, `a${to}k${i};`);
      }
      for (const pair of pairs) {
        await until(
          () =>
            text(pair.stock.doc) === text(pair.sdk.doc) && text(pair.sdk.doc).includes(`a${to}`),
          `${pair.room} converged after ${from} -> ${to}`,
        );
      }
      for (const pair of pairs) {
        expect(pair.sdk.statuses.includes("moved"), pair.room).toBe(moving.has(pair.room));
      }
    }
    for (const [i, pair] of pairs.entries()) {
      // Every edit of both sides, in both documents.
      for (const edit of [`s${i};`, `a5s${i};`, `a5k${i};`, `a3s${i};`, `a3k${i};`])
        expect(text(pair.stock.doc)).toContain(edit);
      expect(
        pair.sdk.leaves,
        `leaves seen in ${pair.room} (moving 4-5 ${shardIndexFor(pair.room, 4) !== shardIndexFor(pair.room, 5)}, 5-3 ${shardIndexFor(pair.room, 5) !== shardIndexFor(pair.room, 3)})`,
      ).toEqual([]);
    }
  }, 120_000);
});

describe("adding a region", () => {
  it("joins through gossip, takes its nearest clients, and serves the rooms it becomes home for", async () => {
    const base = {
      environment: "development",
      allowRegionOverride: true,
      defaultRegion: "wnam",
      auth: { anonymous: true },
      membership: { gossipIntervalMs: 200, suspectAfterMs: 1_000, cacheMs: 100 },
      replication: { antiEntropyMs: 500, idleLeaveMs: 1_000, peerExpiryMs: 1_500 },
    };
    const persist = freshPersistDir();
    const rooms = Array.from({ length: 12 }, (_, i) => `e2e-grow-${i}`);
    // Before: two regions. Every room is written in wnam (and kept by both, home and backup).
    let dev = await startWranglerDev(persist, {
      HALO_CONFIG: JSON.stringify({ ...base, shards: { wnam: 2, weur: 2 } }),
    });
    const writers = rooms.map((room, i) => {
      const doc = new Y.Doc();
      const provider = new WebsocketProvider(`${dev.httpUrl}/v1/rooms`, room, doc, {
        WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
        disableBc: true,
        params: { region: "wnam" },
      });
      doc.getText("t").insert(0, `written before apac joined ${i}`);
      return { doc, provider };
    });
    for (const [i, room] of rooms.entries()) {
      await until(async () => {
        const response = await fetch(`${dev.httpUrl}/v1/rooms/${room}/document?region=weur`);
        const doc = new Y.Doc();
        Y.applyUpdate(doc, new Uint8Array(await response.arrayBuffer()));
        return text(doc) === `written before apac joined ${i}`;
      }, `${room} in weur`);
    }
    for (const writer of writers) writer.provider.destroy();
    await dev.stop();

    // After: apac is configured. Its directory joins by gossip; its clients land there; the
    // rooms whose home it now is (by rendezvous) are pulled from the region that had them.
    dev = await startWranglerDev(persist, {
      HALO_CONFIG: JSON.stringify({ ...base, shards: { wnam: 2, weur: 2, apac: 2 } }),
    });
    try {
      const homed = rooms.filter(
        (room) => homeAndBackup(room, ["wnam", "weur", "apac"]).home === "apac",
      );
      expect(homed.length).toBeGreaterThan(0);
      for (const room of homed) {
        const i = rooms.indexOf(room);
        const doc = new Y.Doc();
        const provider = new WebsocketProvider(`${dev.httpUrl}/v1/rooms`, room, doc, {
          WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
          disableBc: true,
          params: { region: "apac" },
        });
        await until(() => text(doc) === `written before apac joined ${i}`, `${room} in apac`);
        provider.destroy();
      }
      let table: { clientRegion: string; regions: Array<{ region: string; status: string }> } = {
        clientRegion: "",
        regions: [],
      };
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const response = await fetch(`${dev.httpUrl}/v1/regions?region=wnam`);
        table = (await response.json()) as typeof table;
        if (table.regions.find((entry) => entry.region === "apac")?.status === "alive") break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      // wnam's directory heard of apac by gossip, and a client near apac is sent there.
      expect(table.regions.find((entry) => entry.region === "apac")?.status).toBe("alive");
      const near = await fetch(`${dev.httpUrl}/v1/regions?region=apac`);
      expect(((await near.json()) as { clientRegion: string }).clientRegion).toBe("apac");
    } finally {
      await dev.stop();
    }
  }, 120_000);
});
