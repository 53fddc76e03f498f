import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as decoding from "lib0/decoding";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import type { PresenceEvent } from "../../src/presence/presence-schema";
import { summary } from "../support/presence-events";
import { type DevServer, startWranglerDev } from "../support/wrangler-dev";

/**
 * Presence with stock `y-websocket` providers against `wrangler dev`: what their users see
 * when a provider's socket drops and it reconnects on its own, and when tabs close. A raw
 * `ws` socket subscribes to the events, as the SDK will.
 */
type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

const GRACE_MS = 1500;
const WEBHOOK_SECRET = "e2e-webhook-secret";
let server: DevServer;
let receiver: Server;
/** Webhook posts the local receiver accepted, with whether their signature checked out. */
const hooks: Array<{ body: { id: number; room: string; event: PresenceEvent }; signed: boolean }> =
  [];
/** The receiver answers the first post with 500, to make Halo retry. */
let refusedOnce = false;
const providers: WebsocketProvider[] = [];
const sockets: WebSocket[] = [];

function provider(room: string, user: string): WebsocketProvider {
  const created = new WebsocketProvider(server.roomsUrl, room, new Y.Doc(), {
    WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
    disableBc: true,
    params: { user },
  });
  providers.push(created);
  return created;
}

/** A raw socket subscribed to presence events; collects every event it receives. */
async function subscribe(room: string): Promise<PresenceEvent[]> {
  const events: PresenceEvent[] = [];
  const ws = new WebSocket(`${server.roomsUrl}/${room}?presence=events&user=watcher`);
  sockets.push(ws);
  let snapshot = false;
  ws.on("message", (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    if (decoding.readVarUint(decoder) !== 100) return; // y-websocket frames: not this watcher's
    const message = JSON.parse(decoding.readVarString(decoder)) as {
      type: string;
      events?: PresenceEvent[];
    };
    if (message.type === "presence.snapshot") snapshot = true;
    if (message.events) events.push(...message.events);
  });
  await until(() => snapshot, 10_000, "the snapshot");
  return events;
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Starts a webhook receiver on a free port; it checks each post's signature as a user's would. */
async function startReceiver(): Promise<number> {
  receiver = createServer((request, response) => {
    let text = "";
    request.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    request.on("end", () => {
      if (!refusedOnce) {
        refusedOnce = true;
        response.writeHead(500).end();
        return;
      }
      const header = String(request.headers["x-halo-signature"] ?? "");
      const [, timestamp, mac] = header.match(/^t=(\d+),v1=([0-9a-f]+)$/) ?? [];
      const expected = createHmac("sha256", WEBHOOK_SECRET)
        .update(`${timestamp}.${text}`)
        .digest("hex");
      hooks.push({ body: JSON.parse(text), signed: mac === expected });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  return (receiver.address() as AddressInfo).port;
}

beforeAll(async () => {
  const hookPort = await startReceiver();
  const config = {
    environment: "development",
    allowRegionOverride: true,
    defaultRegion: "wnam",
    shards: { wnam: 4, weur: 4, apac: 2 },
    auth: { anonymous: true },
    presence: {
      graceByRoom: [{ pattern: "e2e-grace-*", graceMs: GRACE_MS }],
      webhook: { url: `http://127.0.0.1:${hookPort}/hooks` },
    },
  };
  server = await startWranglerDev(undefined, {
    HALO_CONFIG: JSON.stringify(config),
    HALO_WEBHOOK_SECRET: WEBHOOK_SECRET,
  });
});

afterAll(async () => {
  for (const created of providers) created.destroy();
  for (const ws of sockets) ws.close();
  await server?.stop();
  receiver?.close();
});

describe("presence with stock y-websocket providers", () => {
  it("a provider whose socket drops and reconnects by itself causes no leave and no join", async () => {
    const room = "e2e-grace-reconnect";
    const events = await subscribe(room);
    const ada = provider(room, "ada");
    ada.awareness.setLocalStateField("name", "Ada");
    await until(() => summary(events).includes("user.join"), 10_000, "ada's join");
    // A network drop as the server sees it: the socket ends without a goodbye (not 1000/1001).
    ada.ws?.close(4000, "network drop");
    await until(
      () => summary(events).includes("member.status:present"),
      10_000,
      "the provider to reconnect",
    );
    await new Promise((r) => setTimeout(r, GRACE_MS + 500)); // past the grace: still nothing more
    expect(summary(events)).toEqual([
      "member.join",
      "user.join",
      "member.status:reconnecting",
      "user.status:reconnecting",
      "member.status:present",
      "user.status:present",
    ]);
    const response = await fetch(`${server.httpUrl}/v1/rooms/${room}/presence?userId=ada`);
    const body = (await response.json()) as { members: Array<{ status: string; state: unknown }> };
    expect(body.members).toEqual([
      expect.objectContaining({ status: "present", state: { name: "Ada" } }),
    ]);
  });

  it("two tabs of one user: one user join and, when both are gone, one user leave", async () => {
    const room = "e2e-grace-tabs";
    const events = await subscribe(room);
    const [first, second] = [provider(room, "bob"), provider(room, "bob")];
    first.awareness.setLocalStateField("tab", 1);
    second.awareness.setLocalStateField("tab", 2);
    await until(
      () => summary(events).filter((s) => s === "member.join").length === 2,
      10_000,
      "both tabs",
    );
    // destroy() sends the provider's own null state first: that member leaves at once, `left`.
    first.destroy();
    await until(() => summary(events).includes("member.leave:left"), 10_000, "the first tab");
    // The second tab's line drops and it never comes back: the grace, then `timeout`.
    second.shouldConnect = false;
    second.ws?.close(4000, "network drop");
    await until(
      () => summary(events).includes("user.leave:timeout"),
      GRACE_MS + 10_000,
      "the user's leave",
    );
    expect(summary(events)).toEqual([
      "member.join",
      "user.join",
      "member.join",
      "user.update",
      "member.leave:left",
      "user.update",
      "member.status:reconnecting",
      "user.status:reconnecting",
      "member.leave:timeout",
      "user.leave:timeout",
    ]);
    const history = await fetch(`${server.httpUrl}/v1/rooms/${room}/presence/history`);
    const logged = ((await history.json()) as { events: PresenceEvent[] }).events;
    expect(logged.map((e) => [e.seq, e.type])).toEqual(events.map((e) => [e.seq, e.type]));
  });

  it("posts a user's first join and last leave to the webhook, signed, retrying a refusal", async () => {
    const room = "e2e-webhook";
    const ofRoom = (type: string) => () =>
      hooks.some((h) => h.body.room === room && h.body.event.type === type);
    const carol = provider(room, "carol");
    carol.awareness.setLocalStateField("name", "Carol");
    await until(ofRoom("user.join"), 15_000, "the join webhook");
    carol.destroy();
    await until(ofRoom("user.leave"), 15_000, "the leave webhook");
    const mine = hooks.filter((h) => h.body.room === room);
    expect(mine.map((h) => [h.body.event.type, h.signed])).toEqual([
      ["user.join", true],
      ["user.leave", true],
    ]);
    expect(mine[1]?.body.event).toMatchObject({
      type: "user.leave",
      reason: "left",
      user: { userId: "carol" },
    });
    expect(refusedOnce).toBe(true); // the first post was refused and retried
  });
});
