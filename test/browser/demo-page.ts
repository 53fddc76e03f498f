import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { PROJECT_ROOT } from "../support/wrangler-dev";
import { eventually } from "./chromium";

/** Where screenshots go (gitignored; CI keeps them as artifacts). */
export const ARTIFACTS_DIR = join(PROJECT_ROOT, "test-artifacts");

/** One window of the demo page, in its own browser context (its own cookies and storage). */
export interface DemoPage {
  context: BrowserContext;
  page: Page;
  /** Uncaught errors in the page. */
  errors: string[];
  close(): Promise<void>;
}

export async function openDemo(
  browser: Browser,
  baseUrl: string,
  params: Record<string, string>,
  viewport = { width: 1200, height: 860 },
): Promise<DemoPage> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${baseUrl}/?${new URLSearchParams(params)}`);
  await connected(page);
  return { context, page, errors, close: () => context.close() };
}

/** Resolves once the page's room is connected. */
export async function connected(page: Page): Promise<void> {
  await page.locator('[data-testid="status"][data-status="connected"]').waitFor();
}

/** The members-list entry with this display name. */
export function member(page: Page, name: string): Locator {
  return page.locator(`[data-testid^="member-"][data-name="${name}"]`);
}

/** This page's own member entry (the one marked "you"). */
export function me(page: Page): Locator {
  return page.locator('[data-testid^="member-"][data-you="true"]');
}

/** The cursor drawn for the member with this display name. */
export function cursorOf(page: Page, name: string): Locator {
  return page.locator(`[data-testid^="cursor-"][data-name="${name}"]`);
}

/** Moves the real mouse to a point of the cursor area given as fractions of its size. */
export async function pointAt(page: Page, x: number, y: number): Promise<void> {
  const box = await page.getByTestId("cursor-area").boundingBox();
  if (box === null) throw new Error("the cursor area is not visible");
  await page.mouse.move(box.x + box.width * x, box.y + box.height * y, { steps: 4 });
}

/** Waits until the shared textarea shows `expected`, and returns it. */
export async function textBecomes(page: Page, expected: string, timeoutMs = 15_000) {
  const textarea = page.getByTestId("shared-text");
  let seen = "";
  return eventually(
    () =>
      `the shared text to become ${JSON.stringify(expected)} (last seen ${JSON.stringify(seen)})`,
    async () => {
      seen = await textarea.inputValue();
      return seen === expected ? seen : undefined;
    },
    timeoutMs,
  );
}

/** Saves a full-page screenshot under test-artifacts/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Whether the file is a PNG with at least a header and some image data. */
export function isPng(path: string): boolean {
  const bytes = readFileSync(path);
  return bytes.length > 100 && bytes.subarray(0, 8).equals(PNG_SIGNATURE);
}
