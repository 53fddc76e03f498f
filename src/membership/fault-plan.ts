import { z } from "zod";
import { type Region, regionSchema } from "../config/regions";

/**
 * Faults injected between directories on a local run (`membership.faultInjection`, refused in
 * production), so that failure detection can be shown under `wrangler dev`: pairs cut both
 * ways, added one-way latency per pair, and directories that stop answering and gossiping.
 */
export const faultPlanSchema = z
  .object({
    /** Region pairs that cannot reach each other (both directions). */
    partitions: z
      .array(z.tuple([regionSchema, regionSchema]))
      .max(100)
      .default([]),
    /** Extra delay on each message between two regions, each way (ms). */
    latency: z
      .array(
        z
          .object({
            between: z.tuple([regionSchema, regionSchema]),
            ms: z.number().int().min(0).max(30_000),
          })
          .strict(),
      )
      .max(100)
      .default([]),
    /** Directories that neither answer nor gossip, as if their region were down. */
    stopped: z.array(regionSchema).max(16).default([]),
  })
  .strict();

export type FaultPlan = z.infer<typeof faultPlanSchema>;

export const NO_FAULTS: FaultPlan = { partitions: [], latency: [], stopped: [] };

function samePair(pair: readonly [Region, Region], a: Region, b: Region): boolean {
  return (pair[0] === a && pair[1] === b) || (pair[0] === b && pair[1] === a);
}

export function isPartitioned(plan: FaultPlan, a: Region, b: Region): boolean {
  return plan.partitions.some((pair) => samePair(pair, a, b));
}

/** The added one-way delay between two regions (the largest rule that matches). */
export function addedLatencyMs(plan: FaultPlan, a: Region, b: Region): number {
  return plan.latency.reduce(
    (most, rule) => (samePair(rule.between, a, b) ? Math.max(most, rule.ms) : most),
    0,
  );
}

export function isStopped(plan: FaultPlan, region: Region): boolean {
  return plan.stopped.includes(region);
}
