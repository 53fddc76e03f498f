import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { z } from "zod";
import { PROJECT_ROOT } from "./wrangler-dev";

/** Real editing traces live in the read-only shared folder beside the repository (see its README). */
export const TRACES_DIR = resolve(PROJECT_ROOT, "../shared/traces");

const traceSchema = z.object({
  startContent: z.string(),
  endContent: z.string(),
  txns: z.array(z.object({ patches: z.array(z.tuple([z.number(), z.number(), z.string()])) })),
});

export type EditingTrace = z.infer<typeof traceSchema>;

export function loadTrace(name: string): EditingTrace {
  const raw: unknown = JSON.parse(
    gunzipSync(readFileSync(resolve(TRACES_DIR, `${name}.json.gz`))).toString("utf8"),
  );
  return traceSchema.parse(raw);
}
