import { type CommandName, DEFAULT_INTERVAL_MS, DEFAULT_URL } from "./args";

const GLOBAL = `Options for every command:
  --url <url>       the service (default: $HALO_URL, else ${DEFAULT_URL})
  --token <jwt>     a token (default: $HALO_TOKEN, better: a flag shows in ps; local
                    development needs none)
  --region <hint>   ask this region (wnam, weur, apac locally; where the deployment allows it)
  --json            machine-readable output: one JSON object (a line per event when streaming)
  -h, --help        this help, or a command's with "halo help <command>"`;

const COMMAND_HELP: Record<CommandName, string> = {
  presence: `halo presence <room> [--consistency local|all] [--users]

  Who is in a room now, without joining it (GET /v1/rooms/:room/presence): each member's
  user, name, region, status and how long ago it joined; the first page (100).
  --consistency local   answer from the nearest replica at once (default)
  --consistency all     first ask every other region serving the room for its own members
  --users               one row per user (a user's tabs together) instead of per member`,
  watch: `halo watch <room> [--for <seconds>]

  Opens the room as a watcher (not a member), prints who is there once the first snapshot
  arrives, then every join, update, status change and leave (with its reason) and the
  connection's status, each with the time (UTC). Runs until Ctrl-C (exit 0).
  --for <seconds>   stop by itself after this long (exit 0)
  With --json, one object per line: {"at", "type", ...} with type connection (status),
  members (members), join, update or status (member), leave (member, reason), error (message).`,
  regions: `halo regions [--watch] [--interval <ms>] [--for <seconds>]

  The region-membership table as the nearest directory (or --region's) sees it
  (GET /v1/regions): each region's status, incarnation, heartbeat, when it was last heard,
  shards, load and whether it is configured.
  -w, --watch       print it again every interval until Ctrl-C (with --json: a line per poll)
  --interval <ms>   time between polls (default ${DEFAULT_INTERVAL_MS}, at least 250)
  --for <seconds>   with --watch: stop by itself after this long`,
  help: `halo help [<command>]

  This text, or one command's.`,
};

/** The help for one command, or for the whole CLI. */
export function helpText(topic: CommandName | null): string {
  if (topic !== null) return `${COMMAND_HELP[topic]}\n\n${GLOBAL}`;
  return `halo: the operators' command-line client for Halo (npm run cli -- <command>)

Commands:
  presence <room>   who is in a room now (one query)
  watch <room>      follow a room's presence live
  regions           the region-membership table, once or --watch
  help [<command>]  this text, or one command's

${GLOBAL}

Exit status: 0 done (or stopped with Ctrl-C / --for), 1 the server refused or could not be
reached, 2 a command line the CLI cannot run.

Examples:
  npm run cli -- presence design-review --consistency all
  npm run cli -- watch design-review --json
  npm run cli -- regions --watch --interval 1000`;
}
