import { parseArgs } from "node:util";
import { z } from "zod";
import { REGION_NAMES } from "../config/regions";
import { roomNameSchema } from "../http/room-name";
import { usageError } from "./cli-error";

export const COMMANDS = ["presence", "watch", "regions", "help"] as const;
export type CommandName = (typeof COMMANDS)[number];

export const DEFAULT_URL = "http://127.0.0.1:8787";
export const DEFAULT_INTERVAL_MS = 2000;

/** Options every command but `help` takes. */
export interface GlobalOptions {
  url: string;
  token: string | undefined;
  region: string | undefined;
  json: boolean;
}

export type Invocation =
  | { command: "help"; topic: CommandName | null }
  | {
      command: "presence";
      global: GlobalOptions;
      room: string;
      consistency: "local" | "all" | undefined;
      users: boolean;
    }
  | { command: "watch"; global: GlobalOptions; room: string; forMs: number | null }
  | {
      command: "regions";
      global: GlobalOptions;
      watch: boolean;
      intervalMs: number;
      forMs: number | null;
    };

/** The environment variables the CLI reads. */
export interface CliEnv {
  HALO_URL?: string | undefined;
  HALO_TOKEN?: string | undefined;
}

// One option table for every command: parseArgs is strict, and which command may take which
// option is checked afterwards, so a misplaced option gets a message naming the command.
const OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  region: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  consistency: { type: "string" },
  users: { type: "boolean" },
  for: { type: "string" },
  watch: { type: "boolean", short: "w" },
  interval: { type: "string" },
} as const;
type OptionName = keyof typeof OPTIONS;

const GLOBAL_OPTIONS: readonly OptionName[] = ["url", "token", "region", "json", "help"];
const COMMAND_OPTIONS: Record<CommandName, readonly OptionName[]> = {
  presence: ["consistency", "users"],
  watch: ["for"],
  regions: ["watch", "interval", "for"],
  help: [],
};

const serviceUrlSchema = z
  .string()
  .trim()
  .refine((value) => {
    try {
      return ["http:", "https:", "ws:", "wss:"].includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, "not an http(s) or ws(s) URL, e.g. http://127.0.0.1:8787");
const regionSchema = z.enum(REGION_NAMES, {
  error: `not a region (one of ${REGION_NAMES.join(", ")})`,
});
const consistencySchema = z.enum(["local", "all"], { error: "must be local or all" });
const secondsSchema = z.coerce
  .number({ error: "must be a number of seconds" })
  .positive("must be more than 0 seconds")
  .max(86_400 * 365, "must be at most a year");
// The REST budget is 20 requests a second per client; a poll every 250 ms stays well inside it.
const intervalSchema = z.coerce
  .number({ error: "must be a number of milliseconds" })
  .int("must be a whole number of milliseconds")
  .min(250, "must be at least 250 ms")
  .max(3_600_000, "must be at most an hour");

/** Parses a command line (without `node` and the script) into what to run; throws usage errors. */
export function parseInvocation(argv: readonly string[], env: CliEnv = {}): Invocation {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    // Node's messages go on with advice about `--` that does not apply here: keep the first sentence.
    const message = error instanceof Error ? error.message : String(error);
    throw usageError(message.split(/\.( |\n)|\n/)[0] ?? message);
  }
  const { values, positionals } = parsed;
  const [name, ...args] = positionals;

  if (name === undefined) {
    if (values.help) return { command: "help", topic: null };
    throw usageError(`missing command (one of ${COMMANDS.join(", ")})`);
  }
  const command = commandName(name);
  if (command === "help") {
    if (args.length > 1) throw usageError("help takes at most one command");
    return { command: "help", topic: args[0] === undefined ? null : commandName(args[0]) };
  }
  if (values.help) return { command: "help", topic: command };

  const allowed = new Set([...GLOBAL_OPTIONS, ...COMMAND_OPTIONS[command]]);
  for (const option of Object.keys(values) as OptionName[]) {
    if (values[option] !== undefined && !allowed.has(option))
      throw usageError(`--${option} is not an option of ${command}`);
  }

  const global: GlobalOptions = {
    url:
      values.url !== undefined
        ? check(serviceUrlSchema, values.url, `--url "${values.url}"`)
        : check(serviceUrlSchema, env.HALO_URL || DEFAULT_URL, `HALO_URL "${env.HALO_URL}"`),
    token: nonEmpty(values.token) ?? nonEmpty(env.HALO_TOKEN),
    region:
      values.region === undefined
        ? undefined
        : check(regionSchema, values.region, `--region "${values.region}"`),
    json: values.json ?? false,
  };
  const forMs =
    values.for === undefined
      ? null
      : check(secondsSchema, values.for, `--for "${values.for}"`) * 1000;

  switch (command) {
    case "presence":
      return {
        command,
        global,
        room: roomArgument(command, args),
        consistency:
          values.consistency === undefined
            ? undefined
            : check(consistencySchema, values.consistency, `--consistency "${values.consistency}"`),
        users: values.users ?? false,
      };
    case "watch":
      return { command, global, room: roomArgument(command, args), forMs };
    case "regions": {
      if (args.length > 0) throw usageError(`regions takes no arguments, got "${args.join(" ")}"`);
      const watch = values.watch ?? false;
      if (!watch && values.interval !== undefined) throw usageError("--interval needs --watch");
      if (!watch && forMs !== null) throw usageError("--for needs --watch");
      const intervalMs =
        values.interval === undefined
          ? DEFAULT_INTERVAL_MS
          : check(intervalSchema, values.interval, `--interval "${values.interval}"`);
      return { command, global, watch, intervalMs, forMs };
    }
  }
}

function commandName(name: string): CommandName {
  const found = COMMANDS.find((command) => command === name);
  if (found === undefined)
    throw usageError(`unknown command "${name}" (one of ${COMMANDS.join(", ")})`);
  return found;
}

function roomArgument(command: CommandName, args: readonly string[]): string {
  const [room, ...extra] = args;
  if (room === undefined) throw usageError(`${command}: missing room (halo ${command} <room>)`);
  if (extra.length > 0)
    throw usageError(`${command} takes one room, got ${args.length}: ${args.join(" ")}`);
  return check(roomNameSchema, room, `room "${room}"`);
}

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw usageError(`${what}: ${result.error.issues[0]?.message ?? "invalid"}`);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
