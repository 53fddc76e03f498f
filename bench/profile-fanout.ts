// A V8 CPU profile of Halo's isolate (Worker and Durable Objects) under one fan-out workload,
// to see where a message's time goes: self time by function and by script.
//
//   npx tsx bench/profile-fanout.ts [--kind awareness|doc] [--rooms 1] [--clients 50] [--rate 10]
//                                   [--seconds 5] [--coalesce-ms 20] [--sends-per-second 50000]
//                                   [--no-profile] [--config '{"presence":{...}}']

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { formatSummary, InspectorSession, summarize } from "./cpu-profile";
import { runLoad } from "./load-generator";
import { getFreePort, haloBenchConfig, PROJECT_ROOT, startHaloMiniflare } from "./servers";

const { values } = parseArgs({
  options: {
    kind: { type: "string", default: "awareness" },
    rooms: { type: "string", default: "1" },
    clients: { type: "string", default: "50" },
    rate: { type: "string", default: "10" },
    seconds: { type: "string", default: "5" },
    "coalesce-ms": { type: "string" },
    "sends-per-second": { type: "string" },
    /** More HALO_CONFIG on top, as JSON (e.g. '{"presence":{"historyFlushMs":600000}}'). */
    config: { type: "string" },
    /** Latency only: no inspector session (profiling slows the isolate). */
    "no-profile": { type: "boolean", default: false },
  },
});
const kind = values.kind === "doc" ? "doc" : "awareness";
const inspectorPort = await getFreePort();
// Only what is given on the command line; the rest keeps its default.
const fanout = {
  ...(values["coalesce-ms"] === undefined ? {} : { maxCoalesceMs: Number(values["coalesce-ms"]) }),
  ...(values["sends-per-second"] === undefined
    ? {}
    : { sendsPerSecond: Number(values["sends-per-second"]) }),
};
const server = await startHaloMiniflare(await getFreePort(), {
  vars: {
    HALO_CONFIG: haloBenchConfig({
      fanout,
      ...(values.config ? (JSON.parse(values.config) as Record<string, unknown>) : {}),
    }),
  },
  inspectorPort,
});
try {
  const inspector = values["no-profile"] ? null : await InspectorSession.open(inspectorPort);
  const result = await runLoad({
    url: (room) => server.url(room),
    rooms: Number(values.rooms),
    clientsPerRoom: Number(values.clients),
    updatesPerSecond: Number(values.rate),
    durationSeconds: Number(values.seconds),
    warmupSeconds: 1,
    kind,
    roomPrefix: `profile-${Date.now().toString(36)}`,
    onMeasureStart: () => void inspector?.start(),
  });
  console.log(
    `${kind} R${values.rooms} C${values.clients} U${values.rate}: delivered ${(result.deliveryRatio * 100).toFixed(1)}%, p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms, ${result.framesPerDelivered.toFixed(3)} frames per delivery`,
  );
  if (inspector) {
    const profile = await inspector.stop();
    inspector.close();
    const dir = join(PROJECT_ROOT, "bench/results");
    await mkdir(dir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const file = join(dir, `fanout-${kind}-${stamp}.cpuprofile`);
    await writeFile(file, JSON.stringify(profile));
    console.log(`profile: ${file}\n`);
    console.log(formatSummary(summarize(profile, 30)));
  }
} finally {
  await server.stop();
}
