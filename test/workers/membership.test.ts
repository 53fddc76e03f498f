import { createExecutionContext, env, runInDurableObject, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { DirectoryDurableObject } from "../../durable-objects/directory";
import worker from "../../src/worker";
import { ADMIN, admin, adminEnv } from "./admin";
import { eventually, TestClient } from "./client";

// vitest.workers.config.ts: regions wnam, weur, apac; a gossip round every 200 ms, suspected
// after 1 s without a heartbeat, dead 0.6-2 s later; fault injection on.
const REGIONS = ["apac", "weur", "wnam"];

type RegionRow = {
  region: string;
  status: string;
  incarnation: number;
  heartbeat: number;
  load: { connections: number; rooms: number };
};
type RegionsBody = { answeredBy: string; clientRegion: string; regions: RegionRow[] };

async function regions(from = "wnam"): Promise<RegionsBody> {
  const response = await SELF.fetch(`http://halo.test/v1/regions?region=${from}`);
  expect(response.status).toBe(200);
  return (await response.json()) as RegionsBody;
}

function statusIn(body: RegionsBody, region: string): string | undefined {
  return body.regions.find((row) => row.region === region)?.status;
}

/** Every region's directory sees every region alive. */
async function allAlive(): Promise<boolean> {
  for (const from of REGIONS) {
    const body = await regions(from);
    if (REGIONS.some((region) => statusIn(body, region) !== "alive")) return false;
  }
  return true;
}

afterEach(async () => {
  // Leave the directories as the next test expects them: no faults, nothing drained.
  expect((await admin("DELETE", "/v1/admin/faults")).status).toBe(200);
  for (const region of REGIONS) await admin("POST", `/v1/admin/regions/${region}/undrain`);
  await eventually(allAlive, 8000, "every region alive again");
});

describe("region directories inside workerd (real RPC, real alarms, real SQLite)", () => {
  it("converge: each region's GET /v1/regions lists all three alive, heartbeats moving", async () => {
    await eventually(allAlive, 8000, "every directory to see every region alive");
    const before = await regions("apac");
    expect(before.answeredBy).toBe("apac");
    expect(before.regions.map((row) => row.region)).toEqual(REGIONS);
    await new Promise((resolve) => setTimeout(resolve, 700));
    const after = await regions("apac");
    for (const region of REGIONS) {
      const was = before.regions.find((row) => row.region === region);
      const now = after.regions.find((row) => row.region === region);
      expect(now?.heartbeat, `${region}'s heartbeat as apac sees it`).toBeGreaterThan(
        was?.heartbeat ?? Number.POSITIVE_INFINITY,
      );
    }
  });

  it("a stopped directory is suspected, then declared dead; started again, it comes back with a higher incarnation", async () => {
    await eventually(allAlive, 8000, "a settled table");
    const incarnation = (await regions("wnam")).regions.find((r) => r.region === "apac")
      ?.incarnation as number;
    expect((await admin("PUT", "/v1/admin/faults", { stopped: ["apac"] })).status).toBe(200);

    const seen = new Set<string>();
    await eventually(
      async () => {
        const body = await regions("wnam");
        seen.add(statusIn(body, "apac") ?? "missing");
        return statusIn(body, "apac") === "dead";
      },
      10_000,
      "wnam to declare apac dead",
    );
    expect(seen.has("suspect"), "suspected before declared dead").toBe(true);
    await eventually(
      async () => statusIn(await regions("weur"), "apac") === "dead",
      5000,
      "weur to agree",
    );
    // A stopped directory does not answer: asking it for the table falls back to the next nearest.
    expect((await regions("apac")).answeredBy).not.toBe("apac");

    expect((await admin("DELETE", "/v1/admin/faults")).status).toBe(200);
    await eventually(allAlive, 8000, "apac to refute its death");
    const back = (await regions("wnam")).regions.find((r) => r.region === "apac");
    expect(back?.incarnation).toBeGreaterThan(incarnation);
  });

  it("a cut between two regions kills no one: heartbeats go round through the third", async () => {
    await eventually(allAlive, 8000, "a settled table");
    const cut = await admin("PUT", "/v1/admin/faults", { partitions: [["wnam", "apac"]] });
    expect(cut.status).toBe(200);
    const start = Date.now();
    while (Date.now() - start < 4000) {
      for (const from of REGIONS) {
        const body = await regions(from);
        for (const region of REGIONS) expect(statusIn(body, region)).not.toBe("dead");
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

  it("drain moves new clients to the next nearest region; undrain brings them back", async () => {
    await eventually(allAlive, 8000, "a settled table");
    const room = "membership-drain";
    const before = (await (
      await SELF.fetch(`http://halo.test/v1/rooms/${room}?region=weur`)
    ).json()) as {
      region: string;
    };
    expect(before.region).toBe("weur");

    const drained = await admin("POST", "/v1/admin/regions/weur/drain");
    expect(drained.status).toBe(200);
    expect(((await drained.json()) as { entry: RegionRow }).entry.status).toBe("left");
    await eventually(
      async () => statusIn(await regions("weur"), "weur") === "left",
      3000,
      "weur's own table to say left",
    );
    await eventually(
      async () => (await regions("weur")).clientRegion !== "weur",
      3000,
      "a client near weur to be routed elsewhere",
    );
    const client = await TestClient.connect(room, "?region=weur");
    client.doc.getText("t").insert(0, "moved");
    const summary = (await (
      await SELF.fetch(`http://halo.test/v1/rooms/${room}?region=weur`)
    ).json()) as {
      region: string;
      connections: number;
    };
    expect(summary.region).not.toBe("weur");
    expect(REGIONS).toContain(summary.region);
    await eventually(
      async () => {
        const s = (await (
          await SELF.fetch(`http://halo.test/v1/rooms/${room}?region=weur`)
        ).json()) as {
          connections: number;
        };
        return s.connections === 1;
      },
      2000,
      "the client to be counted where it was routed",
    );
    // Everyone hears of the drain, and keeps hearing weur's heartbeat: left is not dead.
    await eventually(
      async () => statusIn(await regions("apac"), "weur") === "left",
      3000,
      "apac to see the drain",
    );
    client.close();

    expect((await admin("POST", "/v1/admin/regions/weur/undrain")).status).toBe(200);
    await eventually(
      async () => (await regions("weur")).clientRegion === "weur",
      3000,
      "clients near weur to be routed to weur again",
    );
  });
});

describe("a directory's storage", () => {
  it("keeps the table in SQLite; a directory rebuilt from it knows every region and comes back with a higher incarnation", async () => {
    await eventually(allAlive, 8000, "a settled table");
    const stub = env.DIRECTORY.get(env.DIRECTORY.idFromName("directory:weur"));
    await runInDurableObject(stub, async (running: DirectoryDurableObject, state) => {
      const before = await running.view("weur");
      const stored = state.storage.sql
        .exec<{ value: string }>("SELECT value FROM directory_state WHERE key = 'membership'")
        .one();
      const persisted = JSON.parse(stored.value) as { entries: Array<{ region: string }> };
      expect(persisted.entries.map((e) => e.region).sort()).toEqual(["apac", "wnam"]);
      // What a restart does: a new instance over the same storage.
      const restarted = new DirectoryDurableObject(state, env);
      const after = await restarted.view("weur");
      expect(after.incarnation).toBe(before.incarnation + 1);
      expect(after.entries.map((e) => [e.region, e.status])).toEqual([
        ["apac", "alive"],
        ["weur", "alive"],
        ["wnam", "alive"],
      ]);
    });
    // The others accept the higher incarnation: welcomed back, never declared dead.
    await eventually(allAlive, 8000, "everyone alive after the restart");
  });
});

describe("load figures in the table", () => {
  it("shards report their connections and rooms to their directory, and again when clients leave", async () => {
    const loadOf = async () =>
      (await regions("apac")).regions.find((row) => row.region === "apac")?.load;
    const clients = await Promise.all([
      TestClient.connect("load-a", "?region=apac"),
      TestClient.connect("load-a", "?region=apac"),
      TestClient.connect("load-b", "?region=apac"),
    ]);
    await eventually(
      async () => (await loadOf())?.connections === 3,
      3000,
      "apac's entry to count three connections",
    );
    expect((await loadOf())?.rooms).toBeGreaterThanOrEqual(1);
    // The other regions learn it through gossip.
    await eventually(
      async () =>
        (await regions("wnam")).regions.find((row) => row.region === "apac")?.load.connections ===
        3,
      3000,
      "wnam to hear of apac's load",
    );
    for (const client of clients) client.close();
    await eventually(
      async () => (await loadOf())?.connections === 0,
      3000,
      "the trailing report after the last client left",
    );
  });
});

describe("membership admin routes: clear errors", () => {
  it("drain of a region that is not configured is a 404 naming it", async () => {
    const response = await admin("POST", "/v1/admin/regions/oc/drain");
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({
      error: { code: "region_not_configured", field: "region" },
    });
  });

  it("a malformed fault plan is a 400 naming the field", async () => {
    const response = await admin("PUT", "/v1/admin/faults", { partitions: [["wnam", "mars"]] });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      error: { code: "invalid_body", field: "partitions.0.1" },
    });
  });

  it("fault injection is off unless configured", async () => {
    const config = JSON.parse(JSON.stringify(env.HALO_CONFIG)) as {
      membership: { faultInjection: boolean };
    };
    config.membership.faultInjection = false;
    const request = new Request("http://halo.test/v1/admin/faults", {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const response = await worker.fetch(
      request,
      { ...adminEnv, HALO_CONFIG: config },
      createExecutionContext(),
    );
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: "fault_injection_disabled" } });
  });

  it("the drain route needs the admin token", async () => {
    const response = await SELF.fetch("http://halo.test/v1/admin/regions/weur/drain", {
      method: "POST",
    });
    expect(response.status).toBe(404);
  });
});
