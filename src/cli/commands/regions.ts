import { setTimeout as sleep } from "node:timers/promises";
import type { HaloClient } from "../../client/index";
import { regionsResponseSchema } from "../../http/api-schemas";
import type { Invocation } from "../args";
import { describeError, EXIT_OK } from "../cli-error";
import { checkAnswer, openClient } from "../client";
import { clock, type Output, regionsReport } from "../format";

type RegionsInvocation = Extract<Invocation, { command: "regions" }>;

/**
 * `regions`: the membership table once, or with `--watch` once per interval until `stop`
 * aborts (Ctrl-C or `--for`). While watching, a failed poll is reported and the next one still
 * runs: a region failing over is exactly when an operator watches, and the server may blink.
 */
export async function regionsCommand(
  invocation: RegionsInvocation,
  out: Output,
  stop: AbortSignal,
  now: () => number = Date.now,
): Promise<number> {
  const client = openClient(invocation.global);
  try {
    if (!invocation.watch) {
      const answer = await fetchTable(client);
      if (invocation.global.json) out.line(JSON.stringify(answer));
      else for (const line of regionsReport(answer)) out.line(line);
      return EXIT_OK;
    }
    let first = true;
    while (!stop.aborted) {
      const at = now();
      try {
        const answer = await untilAborted(fetchTable(client), stop);
        if (answer === null) break;
        if (invocation.global.json)
          out.line(JSON.stringify({ at: new Date(at).toISOString(), ...answer }));
        else {
          if (!first) out.line("");
          out.line(`${clock(at)}`);
          for (const line of regionsReport(answer)) out.line(line);
        }
      } catch (error) {
        const message = describeError(error, invocation.global.url);
        if (invocation.global.json)
          out.line(JSON.stringify({ at: new Date(at).toISOString(), error: message }));
        else out.error(`${clock(at)}  ${message}`);
      }
      first = false;
      await sleep(invocation.intervalMs, undefined, { signal: stop }).catch(() => {});
    }
    return EXIT_OK;
  } finally {
    client.close();
  }
}

async function fetchTable(client: HaloClient) {
  return checkAnswer(regionsResponseSchema, await client.fetchRegions(), "GET /v1/regions");
}

/** The promise's value, or null as soon as `stop` aborts (the SDK's fetch takes no signal). */
function untilAborted<T>(promise: Promise<T>, stop: AbortSignal): Promise<T | null> {
  if (stop.aborted) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(null);
    stop.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        stop.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        stop.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
