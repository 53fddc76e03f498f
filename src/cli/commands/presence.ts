import { presenceResponseSchema } from "../../http/api-schemas";
import type { Invocation } from "../args";
import { EXIT_OK } from "../cli-error";
import { checkAnswer, openClient } from "../client";
import { type Output, presenceReport } from "../format";

type PresenceInvocation = Extract<Invocation, { command: "presence" }>;

/** `presence <room>`: one REST query, printed as a table or as the answer's JSON. */
export async function presenceCommand(
  invocation: PresenceInvocation,
  out: Output,
  now: () => number = Date.now,
): Promise<number> {
  const client = openClient(invocation.global);
  try {
    const answer = await client.fetchPresence(invocation.room, {
      ...(invocation.consistency === undefined ? {} : { consistency: invocation.consistency }),
      ...(invocation.users ? { view: "users" as const } : {}),
    });
    const response = checkAnswer(presenceResponseSchema, answer, `presence of ${invocation.room}`);
    if (invocation.global.json) out.line(JSON.stringify(response));
    else for (const line of presenceReport(response, now())) out.line(line);
    return EXIT_OK;
  } finally {
    client.close();
  }
}
