// V8 CPU profiles of Halo's Worker and Durable Objects, taken through workerd's inspector
// (`wrangler dev --inspector-port`) with the Chrome DevTools Protocol's Profiler domain, and a
// summary of where the samples fell: self time by function, and by module (Yjs, lib0, zod,
// Halo's core, the shell, or the runtime itself).

import WebSocket from "ws";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** The Profiler domain's `Profile`: a call tree, and one node id per sample. */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One inspector session on the Worker's isolate (the Worker and its Durable Objects share it). */
export class InspectorSession {
  private nextId = 1;
  private readonly pending = new Map<number, (result: unknown) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      const message = JSON.parse(data.toString("utf8")) as { id?: number; result?: unknown };
      if (message.id === undefined) return; // events: not used
      this.pending.get(message.id)?.(message.result);
      this.pending.delete(message.id);
    });
  }

  static async open(inspectorPort: number): Promise<InspectorSession> {
    const listing = (await (
      await fetch(`http://127.0.0.1:${inspectorPort}/json`)
    ).json()) as Array<{
      webSocketDebuggerUrl: string;
    }>;
    const target = listing[0];
    if (!target) throw new Error(`no inspector target on port ${inspectorPort}`);
    const ws = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return new InspectorSession(ws);
  }

  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve) => {
      this.pending.set(id, (result) => resolve(result as T));
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** `call`, or null when no answer comes within `timeoutMs` (a busy or dying isolate). */
  async callWithin<T>(method: string, timeoutMs: number): Promise<T | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    try {
      return await Promise.race([this.call<T>(method), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async start(samplingIntervalUs = 200): Promise<void> {
    await this.call("Profiler.enable");
    await this.call("Profiler.setSamplingInterval", { interval: samplingIntervalUs });
    await this.call("Profiler.start");
  }

  async stop(): Promise<CpuProfile> {
    const { profile } = await this.call<{ profile: CpuProfile }>("Profiler.stop");
    return profile;
  }

  close(): void {
    this.ws.close();
  }
}

export interface ProfileSummary {
  /** Wall time the profile covers, and the share of it the isolate spent running JavaScript. */
  totalMs: number;
  busyShare: number;
  byFunction: Array<{ name: string; ms: number; share: number }>;
  byModule: Array<{ module: string; ms: number; share: number }>;
}

/** Self time per function and per module, largest first; idle and GC are reported as such. */
export function summarize(profile: CpuProfile, top = 25): ProfileSummary {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id)?.callFrame;
    if (!frame) continue;
    totalUs += us;
    if (frame.functionName === "(idle)") idleUs += us;
    const module = moduleOf(frame.url, frame.functionName);
    const name = `${frame.functionName || "(anonymous)"} ${module}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byModule.set(module, (byModule.get(module) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const rank = (map: Map<string, number>) =>
    [...map]
      .filter(([key]) => !key.startsWith("(idle)"))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top);
  return {
    totalMs: totalUs / 1000,
    busyShare: totalUs === 0 ? 0 : busyUs / totalUs,
    byFunction: rank(byFunction).map(([name, us]) => ({
      name,
      ms: us / 1000,
      share: us / busyUs,
    })),
    byModule: rank(byModule).map(([module, us]) => ({
      module,
      ms: us / 1000,
      share: us / busyUs,
    })),
  };
}

/** The bundle keeps source paths in its inline source map only; the function's URL names the bundle. */
function moduleOf(url: string, functionName: string): string {
  if (functionName.startsWith("(")) return functionName; // (idle), (program), (garbage collector)
  if (url === "") return "(runtime)";
  return url.replace(/^.*\//, "");
}

export function formatSummary(summary: ProfileSummary): string {
  const lines = [
    `profile: ${(summary.totalMs / 1000).toFixed(2)} s, JavaScript busy ${(summary.busyShare * 100).toFixed(1)}% of it`,
    "",
    "| self time by function | ms | share of busy |",
    "|---|---:|---:|",
    ...summary.byFunction.map(
      (f) => `| ${f.name} | ${f.ms.toFixed(0)} | ${(f.share * 100).toFixed(1)}% |`,
    ),
    "",
    "| self time by script | ms | share of busy |",
    "|---|---:|---:|",
    ...summary.byModule.map(
      (m) => `| ${m.module} | ${m.ms.toFixed(0)} | ${(m.share * 100).toFixed(1)}% |`,
    ),
  ];
  return lines.join("\n");
}
