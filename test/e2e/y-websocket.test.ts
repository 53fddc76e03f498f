import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { shardIndexFor } from "../../src/routing/jump-hash";
import { loadTrace } from "../support/traces";
import { type DevServer, startWranglerDev } from "../support/wrangler-dev";

/**
 * Stock `y-websocket` clients against `wrangler dev`. `disableBc: true` matters: without it,
 * providers in one process sync through a BroadcastChannel and a test could pass without the
 * server.
 */
type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

let server: DevServer;
const providers: WebsocketProvider[] = [];

function client(room: string) {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(server.roomsUrl, room, doc, {
    WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
    disableBc: true,
  });
  providers.push(provider);
  return { doc, provider, text: doc.getText("t") };
}

async function until(check: () => boolean, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

const synced =
  (...clients: Array<{ provider: WebsocketProvider }>) =>
  () =>
    clients.every((c) => c.provider.synced);

beforeAll(async () => {
  server = await startWranglerDev();
});

afterAll(async () => {
  for (const provider of providers) provider.destroy();
  await server?.stop();
});

describe("stock y-websocket clients against wrangler dev", () => {
  it("converges edits from three clients and shows each the others' awareness", async () => {
    const clients = [client("e2e-three"), client("e2e-three"), client("e2e-three")];
    await until(synced(...clients), 10_000, "all three to sync");
    clients.forEach((c, i) => {
      c.provider.awareness.setLocalStateField("user", { name: `user-${i}` });
      c.text.insert(0, `[${i}]`);
    });
    await until(() => clients.every((c) => c.text.length === 9), 5000, "every edit everywhere");
    const texts = clients.map((c) => c.text.toString());
    expect(new Set(texts).size).toBe(1);
    for (const marker of ["[0]", "[1]", "[2]"]) expect(texts[0]).toContain(marker);

    await until(
      () => clients.every((c) => c.provider.awareness.getStates().size === 3),
      5000,
      "awareness everywhere",
    );
    for (const c of clients) {
      const names = [...c.provider.awareness.getStates().values()]
        .map((s) => (s as { user?: { name: string } }).user?.name)
        .sort();
      expect(names).toEqual(["user-0", "user-1", "user-2"]);
    }
  });

  it("removes a disconnected client from the others' awareness within 1 s", async () => {
    const [a, b, c] = [client("e2e-leave"), client("e2e-leave"), client("e2e-leave")];
    await until(synced(a, b, c), 10_000, "sync");
    a.provider.awareness.setLocalStateField("user", { name: "a" });
    b.provider.awareness.setLocalStateField("user", { name: "b" });
    c.provider.awareness.setLocalStateField("user", { name: "c" });
    await until(
      () =>
        b.provider.awareness.getStates().size === 3 && c.provider.awareness.getStates().size === 3,
      5000,
      "awareness",
    );
    const leaver = a.doc.clientID;
    a.provider.destroy();
    const elapsed = await until(
      () =>
        !b.provider.awareness.getStates().has(leaver) &&
        !c.provider.awareness.getStates().has(leaver),
      1000,
      "the leaver to disappear",
    );
    expect(elapsed).toBeLessThanOrEqual(1000);
  });

  it("shows a reconnecting client to the others at once, and the others to it (y-websocket#122)", async () => {
    const [a, b] = [client("e2e-reconnect"), client("e2e-reconnect")];
    await until(synced(a, b), 10_000, "sync");
    a.provider.awareness.setLocalStateField("user", { name: "a" });
    b.provider.awareness.setLocalStateField("user", { name: "b" });
    await until(
      () =>
        a.provider.awareness.getStates().size === 2 && b.provider.awareness.getStates().size === 2,
      5000,
      "awareness",
    );
    a.provider.disconnect();
    await until(() => !b.provider.awareness.getStates().has(a.doc.clientID), 2000, "a's removal");
    a.provider.connect();
    // Without the server's clock bumps both would wait for the next 15 s renewal.
    await until(
      () => b.provider.awareness.getStates().has(a.doc.clientID),
      2000,
      "b to see a again",
    );
    await until(
      () => a.provider.awareness.getStates().has(b.doc.clientID),
      2000,
      "a to see b again",
    );
  });

  it("keeps two rooms isolated", async () => {
    const red = client("e2e-red");
    const blue = client("e2e-blue");
    const red2 = client("e2e-red");
    await until(synced(red, blue, red2), 10_000, "sync");
    red.text.insert(0, "red only");
    blue.text.insert(0, "blue only");
    await until(() => red2.text.toString() === "red only", 5000, "red to reach red2");
    expect(blue.text.toString()).toBe("blue only");
    expect(red.provider.awareness.getStates().size).toBe(2);
  });

  it("serves rooms that live on different shards", async () => {
    // wrangler.toml gives the default region 4 shards; pick two rooms jump hash sends apart.
    const names = Array.from({ length: 20 }, (_, i) => `e2e-shard-${i}`);
    const first = names[0] as string;
    const second = names.find((n) => shardIndexFor(n, 4) !== shardIndexFor(first, 4)) as string;
    const summaries = await Promise.all(
      [first, second].map(
        async (room) =>
          (await (await fetch(`${server.httpUrl}/v1/rooms/${room}`)).json()) as { shard: string },
      ),
    );
    expect(summaries[0]?.shard).not.toBe(summaries[1]?.shard);
    for (const room of [first, second]) {
      const a = client(room);
      const b = client(room);
      a.text.insert(0, `hello ${room}`);
      await until(() => b.text.toString() === `hello ${room}`, 5000, `${room} to sync`);
    }
  });

  it("replays a real editing trace to the others and keeps it across a restart", async () => {
    const trace = loadTrace("sveltecomponent");
    const writer = client("e2e-trace");
    const readers = [client("e2e-trace"), client("e2e-trace")];
    await until(synced(writer, ...readers), 10_000, "sync");
    const writerCloses: Array<{ code: number; reason: string }> = [];
    writer.provider.on("connection-close", (event) => {
      if (event) writerCloses.push({ code: event.code, reason: event.reason });
    });
    writer.text.insert(0, trace.startContent);
    for (const txn of trace.txns) {
      writer.doc.transact(() => {
        for (const [pos, deleted, inserted] of txn.patches) {
          if (deleted > 0) writer.text.delete(pos, deleted);
          if (inserted.length > 0) writer.text.insert(pos, inserted);
        }
      });
    }
    expect(writer.text.toString()).toBe(trace.endContent);
    await until(
      () => readers.every((r) => r.text.toString() === trace.endContent),
      60_000,
      "the trace to reach the readers",
    );
    // Replayed at machine speed, the trace's 18k transactions are 18k frames at once: far over
    // the default rate limit (100/s, burst 200). The server closes the writer with 1008; the
    // stock provider reconnects and its sync step 2 carries the rest. Delayed, never dropped.
    expect(writerCloses[0]).toEqual({
      code: 1008,
      reason:
        "rate limit: over 100 messages/s (limits.messagesPerSecond), burst 200 (limits.messageBurst)",
    });

    for (const provider of providers.splice(0)) provider.destroy();
    await server.stop();
    server = await startWranglerDev(server.persistDir);

    const late = client("e2e-trace");
    await until(() => late.provider.synced, 10_000, "sync after restart");
    await until(
      () => late.text.toString() === trace.endContent,
      10_000,
      "the whole document after restart",
    );
    const threeAfter = client("e2e-three");
    await until(() => threeAfter.provider.synced, 10_000, "sync");
    expect(threeAfter.text.length).toBe(9); // the first test's room survived too
  });
});
