import { existsSync, statSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type DevServer, startWranglerDev } from "../support/wrangler-dev";
import { eventually, launchChromium } from "./chromium";
import {
  connected,
  cursorOf,
  type DemoPage,
  isPng,
  me,
  member,
  openDemo,
  pointAt,
  screenshot,
  textBecomes,
} from "./demo-page";

let server: DevServer;
let browser: Browser;

beforeAll(async () => {
  [server, browser] = await Promise.all([startWranglerDev(), launchChromium()]);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("the Worker serves the demo beside the API", () => {
  test("the page and its bundle are static assets; /v1 and /healthz still reach the Worker", async () => {
    const page = await fetch(`${server.httpUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(await page.text()).toContain("/build/demo.js");

    const bundle = await fetch(`${server.httpUrl}/build/demo.js`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get("content-type")).toContain("javascript");
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(1000);

    const health = await fetch(`${server.httpUrl}/healthz`);
    expect(await health.json()).toMatchObject({ ok: true });
    // Just after start a directory may know only itself; the page test waits for all three.
    const regions = (await (await fetch(`${server.httpUrl}/v1/regions?region=weur`)).json()) as {
      answeredBy: string;
      regions: unknown[];
    };
    expect(regions.answeredBy).toBe("weur");
    expect(regions.regions.length).toBeGreaterThan(0);
    const missing = await fetch(`${server.httpUrl}/no-such-file`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
  });
});

describe("two windows in two regions share the demo room", () => {
  let ada: DemoPage;
  let grace: DemoPage;

  beforeAll(async () => {
    // Two browser contexts: two independent windows, as two people would have.
    ada = await openDemo(browser, server.httpUrl, { region: "wnam", name: "Ada", room: "demo" });
    grace = await openDemo(
      browser,
      server.httpUrl,
      { region: "apac", name: "Grace", room: "demo" },
      { width: 980, height: 760 },
    );
  });

  afterAll(async () => {
    await ada?.close();
    await grace?.close();
  });

  test("each sees itself and the other in the members list, with the right region", async () => {
    for (const [page, name, region] of [
      [ada.page, "Ada", "wnam"],
      [grace.page, "Grace", "apac"],
    ] as const) {
      const own = me(page);
      await own.waitFor();
      expect(await own.getAttribute("data-name")).toBe(name);
      expect(await own.getAttribute("data-region")).toBe(region);
    }
    const graceAtAda = member(ada.page, "Grace");
    await graceAtAda.waitFor({ timeout: 15_000 });
    expect(await graceAtAda.getAttribute("data-region")).toBe("apac");
    expect(await graceAtAda.getAttribute("data-status")).toBe("present");
    expect(await graceAtAda.getAttribute("data-you")).toBe("false");

    const adaAtGrace = member(grace.page, "Ada");
    await adaAtGrace.waitFor({ timeout: 15_000 });
    expect(await adaAtGrace.getAttribute("data-region")).toBe("wnam");
    expect(await adaAtGrace.getAttribute("data-status")).toBe("present");
    expect(await ada.page.locator('[data-testid^="member-"]').count()).toBe(2);
  });

  test("moving the mouse in one window shows that cursor in the other, where it was", async () => {
    await pointAt(ada.page, 0.25, 0.4);
    const adaCursor = cursorOf(grace.page, "Ada");
    await adaCursor.waitFor({ timeout: 15_000 });
    // Positions travel as fractions of the area, so windows of different sizes agree.
    const at = await eventually("Ada's cursor at (0.25, 0.40)", async () => {
      const x = Number(await adaCursor.getAttribute("data-x"));
      const y = Number(await adaCursor.getAttribute("data-y"));
      return Math.abs(x - 0.25) < 0.02 && Math.abs(y - 0.4) < 0.02 ? { x, y } : undefined;
    });
    expect(at.x).toBeCloseTo(0.25, 1);
    expect(await adaCursor.textContent()).toContain("wnam");

    // And it follows the mouse.
    await pointAt(ada.page, 0.7, 0.6);
    await eventually("Ada's cursor to follow to (0.70, 0.60)", async () => {
      const x = Number(await adaCursor.getAttribute("data-x"));
      return Math.abs(x - 0.7) < 0.02 ? x : undefined;
    });

    await pointAt(grace.page, 0.5, 0.5);
    const graceCursor = cursorOf(ada.page, "Grace");
    await graceCursor.waitFor({ timeout: 15_000 });
    expect(await graceCursor.textContent()).toContain("apac");
    // No one sees their own cursor drawn: the real pointer is there.
    expect(await cursorOf(ada.page, "Ada").count()).toBe(0);
  });

  test("text typed in one window appears in the other, both ways, keeping the local caret", async () => {
    const adaText = ada.page.getByTestId("shared-text");
    const graceText = grace.page.getByTestId("shared-text");
    await adaText.click();
    await ada.page.keyboard.type("Hello from Ada");
    await textBecomes(grace.page, "Hello from Ada");

    await graceText.click();
    await grace.page.keyboard.press("Control+End");
    await grace.page.keyboard.type(" and Grace");
    await textBecomes(ada.page, "Hello from Ada and Grace");

    // Ada's caret sits at the start while Grace's edit arrives: it must stay there.
    await adaText.click();
    await ada.page.keyboard.press("Control+Home");
    await grace.page.keyboard.type("!");
    await textBecomes(ada.page, "Hello from Ada and Grace!");
    await ada.page.keyboard.type("> ");
    await textBecomes(ada.page, "> Hello from Ada and Grace!");
    await textBecomes(grace.page, "> Hello from Ada and Grace!");
  });

  test("the region table shows the three regions, as each window's region sees them", async () => {
    for (const [page, region] of [
      [ada.page, "wnam"],
      [grace.page, "apac"],
    ] as const) {
      const table = page.getByTestId("regions-table");
      await table.waitFor();
      for (const name of ["wnam", "weur", "apac"]) {
        // Rows appear as gossip spreads (a second a round); each is alive in a healthy cluster.
        await page
          .locator(`[data-testid="region-row-${name}"][data-status="alive"]`)
          .waitFor({ timeout: 20_000 });
      }
      expect(await page.getByTestId("regions-answered-by").getAttribute("data-region")).toBe(
        region,
      );
    }
  });

  test("a screenshot of each window is saved as a test artifact", async () => {
    // A cursor in view on each side makes the pictures worth looking at.
    await pointAt(ada.page, 0.3, 0.35);
    await pointAt(grace.page, 0.6, 0.55);
    await cursorOf(ada.page, "Grace").waitFor();
    await cursorOf(grace.page, "Ada").waitFor();
    for (const [page, name] of [
      [ada.page, "demo-ada-wnam"],
      [grace.page, "demo-grace-apac"],
    ] as const) {
      const path = await screenshot(page, name);
      expect(existsSync(path)).toBe(true);
      expect(statSync(path).size).toBeGreaterThan(1000);
      expect(isPng(path)).toBe(true);
    }
  });

  test("a window that closes leaves: the other sees the member go", async () => {
    const closedAt = Date.now();
    await grace.close();
    // A closed page's socket ends cleanly (and the page says goodbye first), so the member
    // leaves at once; the bound leaves room for replication between regions.
    await member(ada.page, "Grace").waitFor({ state: "detached", timeout: 10_000 });
    await cursorOf(ada.page, "Grace").waitFor({ state: "detached", timeout: 5_000 });
    expect(Date.now() - closedAt).toBeLessThan(10_000);
    expect(await ada.page.locator('[data-testid^="member-"]').count()).toBe(1);
    // The leave carries the server's reason: `left` (the page said goodbye) or `closed`.
    const activity = await eventually("Grace's leave in the activity log", async () => {
      const text = (await ada.page.getByTestId("activity").textContent()) ?? "";
      return /Grace \(apac\) left: (left|closed)/.test(text) ? text : undefined;
    });
    expect(activity).not.toMatch(/Grace \(apac\) is reconnecting/);
    expect(ada.errors).toEqual([]);
  });
});

describe("changing region", () => {
  test("reconnects to the new region as a new client; the old member leaves", async () => {
    const room = "switch";
    const ada = await openDemo(browser, server.httpUrl, { region: "wnam", name: "Ada", room });
    const linus = await openDemo(browser, server.httpUrl, { region: "weur", name: "Linus", room });
    try {
      await member(linus.page, "Ada").waitFor({ timeout: 15_000 });
      expect(await member(linus.page, "Ada").getAttribute("data-region")).toBe("wnam");

      await ada.page.getByTestId("region-select").selectOption("apac");
      await connected(ada.page);
      await ada.page
        .locator('[data-testid^="member-"][data-you="true"][data-region="apac"]')
        .waitFor();
      // The other window sees Ada in apac, once: the wnam member left when its client closed.
      await linus.page
        .locator('[data-testid^="member-"][data-name="Ada"][data-region="apac"]')
        .waitFor({ timeout: 15_000 });
      await eventually("one Ada in Linus's list", async () =>
        (await member(linus.page, "Ada").count()) === 1 ? true : undefined,
      );
      expect(new URL(ada.page.url()).searchParams.get("region")).toBe("apac");
      expect(ada.errors).toEqual([]);
      expect(linus.errors).toEqual([]);
    } finally {
      await ada.close();
      await linus.close();
    }
  });
});
