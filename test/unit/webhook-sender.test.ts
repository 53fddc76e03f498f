import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseConfig, type WebhookSettings } from "../../src/config/config-schema";
import { PresenceRoster } from "../../src/presence/presence-roster";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import {
  backoffMs,
  deliverDue,
  type SenderEnvironment,
  SIGNATURE_HEADER,
  signWebhook,
} from "../../src/presence/webhook-sender";

const T0 = 1_700_000_000_000;
const SECRET = "whsec-test";
const SETTINGS: WebhookSettings = {
  url: "https://hooks.example/halo",
  events: ["user.join", "user.leave"],
  maxAttempts: 3,
  timeoutMs: 1000,
};

function rosterWithWebhook(store: MemoryPresenceStore) {
  return PresenceRoster.load(
    "room",
    store,
    { graceMs: 0, historyFlushMs: 1000, webhookEvents: new Set(["user.join", "user.leave"]) },
    T0,
    [],
  ).roster;
}

const ada = {
  connectionId: "c1",
  region: "weur",
  identity: { userId: "ada", rights: [], expiresAt: null },
};

/** A receiver that answers each delivery from a script, and records what it got. */
function receiver(answers: Array<number | Error>) {
  const received: Array<{ url: string; headers: Record<string, string>; body: string }> = [];
  let now = T0;
  const platform: SenderEnvironment = {
    nowMs: () => now,
    random: () => 0.5,
    async fetch(url, init) {
      received.push({
        url,
        headers: init.headers as Record<string, string>,
        body: init.body as string,
      });
      const answer = answers.shift() ?? 200;
      if (answer instanceof Error) throw answer;
      return new Response(null, { status: answer });
    },
    log: (message) => logged.push(message),
  };
  const logged: string[] = [];
  return {
    platform,
    received,
    logged,
    advance(ms: number) {
      now += ms;
    },
  };
}

describe("webhook signature and backoff", () => {
  it("signs t.body with HMAC-SHA256, as a receiver can check with any HMAC library", async () => {
    const body = '{"id":1}';
    const expected = createHmac("sha256", SECRET).update(`1700000000.${body}`).digest("hex");
    expect(await signWebhook(SECRET, 1_700_000_000, body)).toBe(`t=1700000000,v1=${expected}`);
  });

  it("doubles the wait per attempt, with jitter, up to ten minutes", () => {
    expect(backoffMs(1, 0)).toBe(500);
    expect(backoffMs(1, 1)).toBe(1000);
    expect(backoffMs(4, 0.5)).toBe(6000);
    expect(backoffMs(30, 0.999)).toBeLessThanOrEqual(10 * 60 * 1000);
  });

  it("is off unless configured, and then needs a URL", () => {
    expect(parseConfig({ shards: { wnam: 1 } }).presence.webhook).toBeUndefined();
    expect(() =>
      parseConfig({ shards: { wnam: 1 }, presence: { webhook: { url: "ftp://x" } } }),
    ).toThrow(/presence.webhook.url/);
  });
});

describe("the roster queues user events for the webhook", () => {
  it("queues user.join and user.leave in the same write as the change, and nothing for members", () => {
    const store = new MemoryPresenceStore();
    const roster = rosterWithWebhook(store);
    roster.announce(ada, 1, JSON.stringify({}), T0);
    roster.announce({ ...ada, connectionId: "c2" }, 2, JSON.stringify({}), T0 + 1); // a second tab: no user event
    roster.connectionGone("c1", true, T0 + 2);
    roster.connectionGone("c2", true, T0 + 3);
    const queued = store.due(T0 + 10, 100);
    expect(queued.map((d) => d.event.type)).toEqual(["user.join", "user.leave"]);
    expect(queued.every((d) => d.attempts === 0 && d.room === "room")).toBe(true);
  });
});

describe("deliverDue", () => {
  it("posts each due delivery, signed, and removes it once answered 2xx", async () => {
    const store = new MemoryPresenceStore();
    rosterWithWebhook(store).announce(ada, 1, JSON.stringify({}), T0);
    const hooks = receiver([204]);
    await deliverDue(store, SETTINGS, SECRET, hooks.platform);
    expect(hooks.received).toHaveLength(1);
    const [post] = hooks.received;
    expect(post?.url).toBe(SETTINGS.url);
    expect(JSON.parse(post?.body ?? "")).toMatchObject({
      room: "room",
      event: { type: "user.join" },
    });
    expect(post?.headers[SIGNATURE_HEADER]).toBe(
      await signWebhook(SECRET, T0 / 1000, post?.body ?? ""),
    );
    expect(store.nextDue()).toBeNull();
  });

  it("retries a failed delivery with backoff, then gives up after maxAttempts and logs it", async () => {
    const store = new MemoryPresenceStore();
    rosterWithWebhook(store).announce(ada, 1, JSON.stringify({}), T0);
    const hooks = receiver([500, new Error("connection refused"), 503]);
    await deliverDue(store, SETTINGS, SECRET, hooks.platform);
    expect(store.nextDue()).toBe(T0 + backoffMs(1, 0.5));
    await deliverDue(store, SETTINGS, SECRET, hooks.platform); // not due yet
    expect(hooks.received).toHaveLength(1);
    hooks.advance(backoffMs(1, 0.5));
    await deliverDue(store, SETTINGS, SECRET, hooks.platform);
    expect(hooks.received).toHaveLength(2);
    hooks.advance(backoffMs(2, 0.5));
    await deliverDue(store, SETTINGS, SECRET, hooks.platform);
    expect(hooks.received.map((r) => r.headers["x-halo-attempt"])).toEqual(["1", "2", "3"]);
    expect(store.nextDue()).toBeNull();
    expect(store.givenUp).toHaveLength(1);
    expect(hooks.logged[0]).toMatch(
      /gave up on delivery 1 \(user.join in room\) after 3 attempts: status 503/,
    );
  });

  it("the same delivery id is sent on every attempt, so a receiver can drop duplicates", async () => {
    const store = new MemoryPresenceStore();
    rosterWithWebhook(store).announce(ada, 1, JSON.stringify({}), T0);
    const hooks = receiver([500, 200]);
    await deliverDue(store, SETTINGS, SECRET, hooks.platform);
    hooks.advance(60_000);
    await deliverDue(store, SETTINGS, SECRET, hooks.platform);
    const ids = hooks.received.map((r) => JSON.parse(r.body).id);
    expect(ids).toEqual([1, 1]);
  });
});
