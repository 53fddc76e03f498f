import WebSocket from "ws";
import type { z } from "zod";
import { connect, type HaloClient, type WebSocketConstructor } from "../client/index";
import type { GlobalOptions } from "./args";
import { CliError } from "./cli-error";

/** The SDK client for the global options; Node 20 has no global WebSocket, so `ws` goes in. */
export function openClient(options: GlobalOptions): HaloClient {
  return connect({
    url: options.url,
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(options.region === undefined ? {} : { region: options.region }),
    WebSocket: WebSocket as unknown as WebSocketConstructor,
  });
}

/**
 * Checks a REST answer against the API's own schema before it is printed: the SDK hands back
 * whatever JSON came (or null), and a proxy's page or another service at the URL should read as
 * that, not as a crash in the table code. Returns the answer itself, not zod's copy, which would
 * drop fields the schema does not name (`--json` prints everything the server sent).
 */
export function checkAnswer<T>(schema: z.ZodType<T>, answer: unknown, what: string): T {
  const result = schema.safeParse(answer);
  if (result.success) return answer as T;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at ${issue.path.join(".")}` : "";
  throw new CliError(
    `the server's answer to ${what} is not Halo's: ${issue?.message ?? "invalid"}${where}`,
  );
}
