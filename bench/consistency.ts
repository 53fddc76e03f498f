// Replication under `wrangler dev` with inter-region latency injected through the fault route
// (one-way = half the simulator's RTT table): how long an edit and a cursor change take to
// reach the other regions' stock clients, and what `?consistency=local` and `=all` cost and
// return right after a change. Rounds interleave the two consistency levels.
//
//   npx tsx bench/consistency.ts [--rounds 30]

import { cpus } from "node:os";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { regionRtt } from "../test/sim/latency";
import { type DevServer, startWranglerDev } from "../test/support/wrangler-dev";

type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

const REGIONS = ["wnam", "weur", "apac"] as const;
const ADMIN = "bench-consistency-admin";
const BATCH_MS = 20; // the shipped replication.batchMs

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > ms) throw new Error(`no result within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - start;
}

interface Client {
  region: string;
  doc: Y.Doc;
  provider: WebsocketProvider;
}

function clientIn(server: DevServer, region: string, room: string): Client {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(server.roomsUrl, room, doc, {
    WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
    disableBc: true,
    params: { region, user: `${region}-user` },
  });
  return { region, doc, provider };
}

interface PresenceAnswer {
  members: Array<{ userId: string; state: { n?: number } }>;
}

async function query(
  server: DevServer,
  room: string,
  consistency: "local" | "all",
): Promise<{ ms: number; n: number | undefined }> {
  const start = performance.now();
  const response = await fetch(
    `${server.httpUrl}/v1/rooms/${room}/presence?region=wnam&consistency=${consistency}`,
  );
  if (!response.ok) throw new Error(`presence query: ${response.status} ${await response.text()}`);
  const body = (await response.json()) as PresenceAnswer;
  const ms = performance.now() - start;
  return { ms, n: body.members.find((m) => m.userId === "apac-user")?.state.n };
}

async function main(): Promise<void> {
  const rounds = option("rounds", 30);
  // wrangler.toml's local configuration, with a REST budget that lets the staleness poll run
  // every few milliseconds (the shipped 20 requests/s would make it a rate-limit measurement).
  const config = {
    environment: "development",
    allowRegionOverride: true,
    defaultRegion: "wnam",
    shards: { wnam: 4, weur: 4, apac: 2 },
    auth: { anonymous: true },
    membership: { faultInjection: true },
    limits: { restRequestsPerSecond: 10_000, restBurst: 10_000 },
  };
  const server = await startWranglerDev(undefined, {
    HALO_ADMIN_TOKEN: ADMIN,
    HALO_CONFIG: JSON.stringify(config),
  });
  try {
    const latency = [
      ["wnam", "weur"],
      ["wnam", "apac"],
      ["weur", "apac"],
    ].map(([a, b]) => ({
      between: [a, b],
      ms: Math.round(regionRtt(a as string, b as string) / 2),
    }));
    const put = await fetch(`${server.httpUrl}/v1/admin/faults`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ latency }),
    });
    if (!put.ok) throw new Error(`fault route: ${put.status} ${await put.text()}`);
    const room = "bench-consistency";
    const clients = REGIONS.map((region) => clientIn(server, region, room));
    await until(() => clients.every((c) => c.provider.synced), 30_000);
    const [west, europe, asia] = clients as [Client, Client, Client];
    asia.provider.awareness.setLocalState({ n: 0 });
    await until(async () => (await query(server, room, "local")).n === 0, 30_000);

    const oneWay = (a: string, b: string) => regionRtt(a, b) / 2;
    const edit: Record<string, number[]> = { wnam: [], weur: [] };
    const cursor: Record<string, number[]> = { wnam: [], weur: [] };
    const answers = {
      local: { ms: [] as number[], fresh: 0 },
      all: { ms: [] as number[], fresh: 0 },
    };
    const stale: number[] = [];
    console.error("settled; rounds start");
    for (let i = 1; i <= rounds; i++) {
      if (i % 5 === 0) console.error(`round ${i}`);
      // An edit in apac, timed until the stock clients in wnam and weur hold it.
      const token = `<${i}>`;
      const sent = performance.now();
      asia.doc.getText("t").insert(0, token);
      await Promise.all(
        [west, europe].map(async (c) => {
          await until(() => c.doc.getText("t").toString().includes(token), 10_000);
          (edit[c.region] as number[]).push(performance.now() - sent);
        }),
      );
      // A cursor change in apac: timed until the stock clients in wnam and weur show it, and
      // until a `consistency=local` query from wnam (polled) answers with it.
      const changed = performance.now();
      asia.provider.awareness.setLocalState({ n: 2 * i - 1 });
      await Promise.all([
        ...[west, europe].map(async (c) => {
          await until(
            () =>
              [...c.provider.awareness.getStates().values()].some(
                (s) => (s as { n?: number }).n === 2 * i - 1,
              ),
            10_000,
          );
          (cursor[c.region] as number[]).push(performance.now() - changed);
        }),
        until(async () => (await query(server, room, "local")).n === 2 * i - 1, 10_000).then(() =>
          stale.push(performance.now() - changed),
        ),
      ]);
      // Another change, and at once both queries from wnam (which goes first alternates).
      asia.provider.awareness.setLocalState({ n: 2 * i });
      const levels: Array<"local" | "all"> = i % 2 === 0 ? ["local", "all"] : ["all", "local"];
      const results = await Promise.all(levels.map((level) => query(server, room, level)));
      levels.forEach((level, k) => {
        const result = results[k] as { ms: number; n: number | undefined };
        answers[level].ms.push(result.ms);
        if (result.n === 2 * i) answers[level].fresh++;
      });
      await until(async () => (await query(server, room, "local")).n === 2 * i, 10_000);
    }
    for (const c of clients) {
      c.provider.destroy();
      c.provider.awareness.destroy(); // its renewal interval would keep the process alive
      c.doc.destroy();
    }

    const row = (label: string, values: number[], oneWayMs: number) =>
      `| ${label} | ${quantile(values, 0.5).toFixed(0)} | ${quantile(values, 0.99).toFixed(0)} | ${oneWayMs.toFixed(0)} | ${(oneWayMs + BATCH_MS).toFixed(0)} | ${(quantile(values, 0.5) - oneWayMs).toFixed(0)} |`;
    console.log(`\nReplication under wrangler dev, ${rounds} rounds, ${cpus().length} cores`);
    console.log(
      `injected one-way latency: ${latency.map((l) => `${l.between.join("-")} ${l.ms} ms`).join(", ")}; batch window ${BATCH_MS} ms\n`,
    );
    console.log("| apac to | p50 ms | p99 ms | one-way | one-way + batch | p50 above one-way |");
    console.log("| --- | --- | --- | --- | --- | --- |");
    for (const region of ["wnam", "weur"]) {
      const ms = oneWay("apac", region);
      console.log(row(`edit, ${region}`, edit[region] as number[], ms));
      console.log(row(`cursor, ${region}`, cursor[region] as number[], ms));
    }
    console.log(
      "\n| query from wnam right after a change in apac | p50 ms | p99 ms | fresh answers |",
    );
    console.log("| --- | --- | --- | --- |");
    for (const level of ["local", "all"] as const) {
      const { ms, fresh } = answers[level];
      console.log(
        `| consistency=${level} | ${quantile(ms, 0.5).toFixed(0)} | ${quantile(ms, 0.99).toFixed(0)} | ${fresh}/${rounds} |`,
      );
    }
    console.log(
      `\nconsistency=local shows the change after p50 ${quantile(stale, 0.5).toFixed(0)} ms, p99 ${quantile(stale, 0.99).toFixed(0)} ms`,
    );
  } finally {
    await server.stop();
  }
}

await main();
process.exit(0); // wrangler's child handles and the providers' sockets are gone; do not linger
