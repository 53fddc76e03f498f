/**
 * `halo`: the operators' command-line client (`npm run cli -- <command>`). Parsing lives in
 * args.ts, printing in format.ts, one module per command in commands/; this file wires them to
 * the process: arguments, environment, streams, Ctrl-C and the exit code.
 */
import { pathToFileURL } from "node:url";
import { type CliEnv, type Invocation, parseInvocation } from "./args";
import { CliError, describeError, EXIT_FAILURE, EXIT_OK } from "./cli-error";
import { presenceCommand } from "./commands/presence";
import { regionsCommand } from "./commands/regions";
import { watchCommand } from "./commands/watch";
import type { Output } from "./format";
import { helpText } from "./help";

/** Runs one command line; resolves with the exit code. `stop` ends a streaming command. */
export async function main(
  argv: readonly string[],
  env: CliEnv,
  out: Output,
  stop: AbortSignal,
): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parseInvocation(argv, env);
  } catch (error) {
    out.error(`halo: ${describeError(error, "")}`);
    return error instanceof CliError ? error.exitCode : EXIT_FAILURE;
  }
  try {
    switch (invocation.command) {
      case "help":
        out.line(helpText(invocation.topic));
        return EXIT_OK;
      case "presence":
        return await presenceCommand(invocation, out);
      case "watch":
        return await streaming(stop, invocation.forMs, (signal) =>
          watchCommand(invocation, out, signal),
        );
      case "regions":
        return await streaming(stop, invocation.forMs, (signal) =>
          regionsCommand(invocation, out, signal),
        );
    }
  } catch (error) {
    out.error(`halo: ${describeError(error, "global" in invocation ? invocation.global.url : "")}`);
    return error instanceof CliError ? error.exitCode : EXIT_FAILURE;
  }
}

/**
 * `stop`, or also `forMs` later. Not `AbortSignal.any([stop, AbortSignal.timeout(ms)])`: the
 * composite holds its sources weakly, and on Node 20 the timeout signal can be garbage collected
 * before it fires, so `--for` would never end (seen with `regions --watch`).
 */
function withDeadline(
  stop: AbortSignal,
  forMs: number | null,
): { signal: AbortSignal; clear(): void } {
  if (forMs === null) return { signal: stop, clear: () => {} };
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), forMs);
  const onStop = () => deadline.abort();
  stop.addEventListener("abort", onStop, { once: true });
  return {
    signal: deadline.signal,
    clear: () => {
      clearTimeout(timer);
      stop.removeEventListener("abort", onStop);
    },
  };
}

/** Runs a streaming command with its stop signal, and drops the deadline timer afterwards. */
async function streaming(
  stop: AbortSignal,
  forMs: number | null,
  command: (signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const deadline = withDeadline(stop, forMs);
  try {
    return await command(deadline.signal);
  } finally {
    deadline.clear();
  }
}

const processOutput: Output = {
  line: (text) => process.stdout.write(`${text}\n`),
  error: (text) => process.stderr.write(`${text}\n`),
};

async function run(): Promise<void> {
  const interrupted = new AbortController();
  // The first Ctrl-C (or a TERM from a supervisor) stops cleanly: the watcher's socket is
  // closed with 1000. A second Ctrl-C is not caught and ends the process at once.
  process.once("SIGINT", () => interrupted.abort());
  process.once("SIGTERM", () => interrupted.abort());
  const code = await main(process.argv.slice(2), process.env, processOutput, interrupted.signal);
  process.exitCode = code;
  // Normally nothing is left and the process ends now; should a socket linger in its closing
  // handshake, do not hang the operator's terminal on it.
  setTimeout(() => process.exit(code), 2000).unref();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await run();
