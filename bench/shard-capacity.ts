// How much one shard sustains before its latency climbs: Halo with a single shard (every room
// lands on it), under a rising load, in two shapes: many small rooms (10 members each, each
// member changing its state 5 times a second), and one room of 50 members changing faster.
// Each step reports the messages the shard receives and sends per second, delivery, p50/p99
// and workerd's CPU; the knee is the first step whose p99 passes 3x the first step's, or whose
// delivery drops below 99.9%. The README's scale-out guidance is computed from these figures.
//
//   npx tsx bench/shard-capacity.ts [--seconds 5] [--rooms 5,10,20,40,80] [--rates 5,10,20,40]

import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type LoadResult, runLoad } from "./load-generator";
import { getFreePort, haloBenchConfig, PROJECT_ROOT, startHaloMiniflare } from "./servers";

interface Step {
  shape: string;
  rooms: number;
  clientsPerRoom: number;
  updatesPerSecond: number;
}

interface StepResult extends Step {
  /** Frames the shard received and sent per second (offered load, from the workload's shape). */
  inPerSecond: number;
  outPerSecond: number;
  load: LoadResult;
  workerdCpuSeconds: number;
}

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rooms: { type: "string", default: "5,10,20,40,80" },
    rates: { type: "string", default: "5,10,20,40" },
  },
});
const seconds = Number(values.seconds);
const steps: Step[] = [
  ...values.rooms.split(",").map((r) => ({
    shape: "rooms of 10, 5 changes/s each",
    rooms: Number(r),
    clientsPerRoom: 10,
    updatesPerSecond: 5,
  })),
  ...values.rates.split(",").map((u) => ({
    shape: "one room of 50",
    rooms: 1,
    clientsPerRoom: 50,
    updatesPerSecond: Number(u),
  })),
];

// One shard, so every room shares it; limits as deployed, except the per-connection rate the
// fastest step needs.
const config = haloBenchConfig({
  shards: { wnam: 1 },
  limits: { messagesPerSecond: 1_000, messageBurst: 2_000 },
});
const results: StepResult[] = [];
for (const step of steps) {
  const server = await startHaloMiniflare(await getFreePort(), { vars: { HALO_CONFIG: config } });
  try {
    const load = await runLoad({
      url: (room) => server.url(room),
      rooms: step.rooms,
      clientsPerRoom: step.clientsPerRoom,
      updatesPerSecond: step.updatesPerSecond,
      durationSeconds: seconds,
      warmupSeconds: 1,
      kind: "awareness",
      roomPrefix: `capacity-${Date.now().toString(36)}`,
      onMeasureStart: () => server.beginWindow(),
      onMeasureEnd: () => server.endWindow(),
    });
    const inPerSecond = step.rooms * step.clientsPerRoom * step.updatesPerSecond;
    results.push({
      ...step,
      inPerSecond,
      outPerSecond: inPerSecond * (step.clientsPerRoom - 1),
      load,
      workerdCpuSeconds: server.cpuSecondsByName().workerd ?? Number.NaN,
    });
    console.error(
      `[capacity] ${step.shape} R${step.rooms} U${step.updatesPerSecond}: ${(load.deliveryRatio * 100).toFixed(1)}%, p99 ${load.latencyMs.p99.toFixed(1)} ms`,
    );
  } finally {
    await server.stop();
  }
}

const lines = [
  `One shard, ${seconds} s per step; ${new Date().toISOString().slice(0, 10)}, ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}`,
  "",
  "| shape | rooms | members | changes/s each | in msg/s | fan-out deliveries/s | delivered | p50 ms | p99 ms | workerd CPU s/s | frames per delivery |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
];
for (const r of results) {
  lines.push(
    `| ${r.shape} | ${r.rooms} | ${r.rooms * r.clientsPerRoom} | ${r.updatesPerSecond} | ${r.inPerSecond} | ${r.outPerSecond} | ${(r.load.deliveryRatio * 100).toFixed(1)}% | ${r.load.latencyMs.p50.toFixed(2)} | ${r.load.latencyMs.p99.toFixed(2)} | ${(r.workerdCpuSeconds / (r.load.measuredMs / 1000)).toFixed(2)} | ${r.load.framesPerDelivered.toFixed(3)} |`,
  );
}
for (const shape of new Set(results.map((r) => r.shape))) {
  const series = results.filter((r) => r.shape === shape);
  const base = series[0]?.load.latencyMs.p99 ?? Number.NaN;
  const knee = series.find((r) => r.load.latencyMs.p99 > 3 * base || r.load.deliveryRatio < 0.999);
  const last = [...series]
    .reverse()
    .find((r) => r !== knee && (!knee || r.inPerSecond < knee.inPerSecond));
  lines.push(
    "",
    knee
      ? `${shape}: the shard held ${last?.inPerSecond ?? "-"} msg/s in; at ${knee.inPerSecond} msg/s p99 was ${knee.load.latencyMs.p99.toFixed(1)} ms and ${(knee.load.deliveryRatio * 100).toFixed(1)}% delivered.`
      : `${shape}: no knee up to ${series.at(-1)?.inPerSecond ?? "-"} msg/s in.`,
  );
}
console.log(lines.join("\n"));
const dir = join(PROJECT_ROOT, "bench/results");
await mkdir(dir, { recursive: true });
await writeFile(
  join(dir, `shard-capacity-${new Date().toISOString().replace(/[:.]/g, "-")}.json`),
  `${JSON.stringify(results, null, 2)}\n`,
);
