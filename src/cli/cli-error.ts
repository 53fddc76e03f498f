import { HaloRequestError } from "../client/index";

/** Exit codes: 2 for a command line the CLI cannot run, 1 for a failure while running it. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A failure reported as one line and an exit code, without a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** A command line the CLI cannot run (exit 2); the message ends with a pointer to the help. */
export function usageError(message: string): CliError {
  return new CliError(`${message}\nRun "halo help" for usage.`, EXIT_USAGE);
}

/**
 * What went wrong, in one line an operator can act on: the server's error code for a refused
 * request, the socket error for an unreachable server, the message otherwise.
 */
export function describeError(error: unknown, url: string): string {
  if (error instanceof CliError) return error.message;
  // Its message is already "<status> <code>: <the server's message>".
  if (error instanceof HaloRequestError) return `the server refused: ${error.message}`;
  if (error instanceof Error) {
    // undici reports an unreachable host as `TypeError: fetch failed` with the cause inside.
    const cause = (error as { cause?: unknown }).cause;
    const code =
      typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : null;
    if (error.message === "fetch failed")
      return `cannot reach ${url}${code ? ` (${code})` : cause instanceof Error ? ` (${cause.message})` : ""}`;
    return error.message;
  }
  return String(error);
}
