import type { WebhookSettings } from "../config/config-schema";
import type { WebhookDelivery, WebhookOutbox } from "./presence-store";

/** The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`. */
export const SIGNATURE_HEADER = "x-halo-signature";

/** Longest wait between two attempts: past it, retries stop growing. */
const MAX_BACKOFF_MS = 10 * 60 * 1000;
const FIRST_BACKOFF_MS = 1000;
/** Deliveries one alarm sends at most; the rest wait for the next alarm, which comes at once. */
const MAX_PER_RUN = 50;

/** What the sender needs from the platform: time, randomness and `fetch`, passed in. */
export interface SenderEnvironment {
  nowMs(): number;
  /** A number in [0, 1). */
  random(): number;
  fetch(url: string, init: RequestInit): Promise<Response>;
  log(message: string): void;
}

/** The body posted for one event. `id` lets a receiver drop a duplicate: a delivery can repeat. */
export function webhookBody(delivery: WebhookDelivery): string {
  return JSON.stringify({ id: delivery.id, room: delivery.room, event: delivery.event });
}

/** Signs `body` as sent at `timestampSeconds` (Stripe-style: the timestamp is signed too, against replays). */
export async function signWebhook(
  secret: string,
  timestampSeconds: number,
  body: string,
): Promise<string> {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${timestampSeconds}.${body}`));
  const hex = [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `t=${timestampSeconds},v1=${hex}`;
}

/** Exponential backoff with jitter: attempt n waits about 2^(n-1) s, at most 10 minutes, never in lockstep. */
export function backoffMs(attempts: number, random: number): number {
  const base = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, attempts - 1));
  return Math.round(base * (0.5 + random / 2));
}

/**
 * Posts every due delivery once. A 2xx removes it; anything else (an error status, a timeout,
 * a refused connection) schedules a retry, until `maxAttempts`, when it is given up and logged.
 * Runs from the alarm, never from a room's message path, so a slow receiver delays only itself.
 */
export async function deliverDue(
  outbox: WebhookOutbox,
  settings: WebhookSettings,
  secret: string,
  platform: SenderEnvironment,
): Promise<void> {
  const now = platform.nowMs();
  for (const delivery of outbox.due(now, MAX_PER_RUN)) {
    const body = webhookBody(delivery);
    const attempts = delivery.attempts + 1;
    let failure: string | null = null;
    try {
      const response = await platform.fetch(settings.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [SIGNATURE_HEADER]: await signWebhook(secret, Math.floor(now / 1000), body),
          "x-halo-delivery": String(delivery.id),
          "x-halo-attempt": String(attempts),
        },
        body,
        signal: AbortSignal.timeout(settings.timeoutMs),
      });
      await response.body?.cancel(); // the answer's body is not needed; free the connection
      if (!response.ok) failure = `status ${response.status}`;
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    }
    if (failure === null) {
      outbox.delivered(delivery.id);
    } else if (attempts >= settings.maxAttempts) {
      outbox.giveUp(delivery.id);
      platform.log(
        `webhook: gave up on delivery ${delivery.id} (${delivery.event.type} in ${delivery.room}) after ${attempts} attempts: ${failure}`,
      );
    } else {
      outbox.retryAt(delivery.id, attempts, now + backoffMs(attempts, platform.random()));
    }
  }
}
