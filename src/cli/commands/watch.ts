import type { Member } from "../../client/index";
import type { Invocation } from "../args";
import { EXIT_FAILURE, EXIT_OK } from "../cli-error";
import { openClient } from "../client";
import { type Output, type WatchEvent, watchJson, watchLines } from "../format";

type WatchInvocation = Extract<Invocation, { command: "watch" }>;

/**
 * `watch <room>`: a presence-only room (not itself a member), its members once the first
 * snapshot is in, then every join, update, status change and leave, and the connection's own
 * status, until `stop` aborts (Ctrl-C or `--for`). Resolves with the exit code: 0 when stopped,
 * 1 when the room gave up by itself (refused for good).
 */
export async function watchCommand(
  invocation: WatchInvocation,
  out: Output,
  stop: AbortSignal,
  now: () => number = Date.now,
): Promise<number> {
  const { json } = invocation.global;
  const print = (event: WatchEvent) => {
    const at = now();
    if (json) out.line(watchJson(event, at));
    else for (const line of watchLines(event, at)) out.line(line);
  };

  const client = openClient(invocation.global);
  // A refused upgrade (401, 403, 400) is only a closed socket to the SDK, which retries it
  // forever; one REST query of the same room first turns those into the server's error code.
  try {
    await client.fetchPresence(invocation.room);
  } catch (error) {
    client.close();
    throw error;
  }

  const room = client.room(invocation.room);
  let shown = false;
  let gaveUp = false;
  print({ type: "connection", status: room.status });
  room.on("status", (status) => {
    print({ type: "connection", status });
    if (status === "disconnected" && !stop.aborted) gaveUp = true;
  });
  room.on("error", (error) => print({ type: "error", message: error.message }));
  // The first snapshot arrives as one join per member present: those make the members list,
  // and only what follows is printed as events.
  room.presence.on("ready", (members) => {
    shown = true;
    print({ type: "members", members: [...members] });
  });
  const event = (type: "join" | "update" | "status") => (member: Member) => {
    if (shown) print({ type, member });
  };
  room.presence.on("join", event("join"));
  room.presence.on("update", event("update"));
  room.presence.on("status", event("status"));
  room.presence.on("leave", (member, reason) => {
    if (shown) print({ type: "leave", member, reason });
  });

  await new Promise<void>((resolve) => {
    if (stop.aborted || gaveUp) return resolve();
    stop.addEventListener("abort", () => resolve(), { once: true });
    room.on("status", (status) => {
      if (status === "disconnected" && gaveUp) resolve();
    });
  });
  room.destroy();
  client.close();
  return gaveUp ? EXIT_FAILURE : EXIT_OK;
}
