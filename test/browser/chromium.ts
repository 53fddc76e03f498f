import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

/**
 * What headless Chromium needs on these machines: no sandbox (root in a container), no GPU,
 * and nothing that reaches for the network by itself (the network is closed but for loopback).
 */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The system's Chromium (Debian's package; `CHROMIUM_PATH` overrides), with a fresh profile. */
export async function launchChromium(): Promise<Browser> {
  const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
  if (!existsSync(executablePath))
    throw new Error(
      `no Chromium at ${executablePath}: install it (apt-get install chromium) or set CHROMIUM_PATH`,
    );
  // chromium.launch gives every run a new temporary user-data dir and removes it on close.
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Polls `probe` until it returns something other than undefined; fails with `what` (a function
 * is asked at the end, so it can say what was last seen) after the timeout.
 */
export async function eventually<T>(
  what: string | (() => string),
  probe: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}${last ? `: ${last}` : ""}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
