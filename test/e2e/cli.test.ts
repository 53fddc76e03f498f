import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { connect, type HaloClient, type WebSocketConstructor } from "../../src/client/index";
import { type DevServer, freePort, PROJECT_ROOT, startWranglerDev } from "../support/wrangler-dev";

/**
 * The operators' CLI (`src/cli/halo.ts`) as a separate process, the way an operator runs it,
 * against `wrangler dev`: its output is parsed (`--json`) and its exit codes checked. Members
 * are put in rooms by a stock y-websocket provider and by the SDK.
 */
type PolyfillOption = NonNullable<
  NonNullable<ConstructorParameters<typeof WebsocketProvider>[3]>["WebSocketPolyfill"]
>;

const TSX = join(PROJECT_ROOT, "node_modules/.bin/tsx");
const CLI = join(PROJECT_ROOT, "src/cli/halo.ts");

let server: DevServer;
const clients: HaloClient[] = [];
const providers: WebsocketProvider[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startWranglerDev();
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const provider of providers) provider.destroy();
  for (const client of clients) client.close();
  await server?.stop();
});

/** A running CLI: its stdout lines as they come, its stderr, and its exit code when it ends. */
interface CliProcess {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function startCli(args: readonly string[]): CliProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, HALO_URL: server.httpUrl };
  delete env.HALO_TOKEN;
  const child = spawn(TSX, [CLI, ...args], { cwd: PROJECT_ROOT, env });
  children.push(child);
  const lines: string[] = [];
  let pending = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    const complete = pending.split("\n");
    pending = complete.pop() ?? "";
    lines.push(...complete);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      if (pending !== "") lines.push(pending);
      resolve(code);
    }),
  );
  return { child, lines, stderr: () => stderr, exited };
}

/** Runs the CLI to its end. */
async function runCli(args: readonly string[]) {
  const cli = startCli(args);
  const code = await cli.exited;
  return { code, stdout: cli.lines.join("\n"), stderr: cli.stderr() };
}

async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Runs the CLI until `accept` takes its output (a member that is still replicating, say). */
async function runCliUntil<T>(
  args: readonly string[],
  accept: (stdout: string) => T | null,
  what: string,
): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const result = await runCli(args);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const accepted = accept(result.stdout);
    if (accepted !== null) return accepted;
    if (Date.now() > deadline) throw new Error(`${what}; last output:\n${result.stdout}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface JsonLine {
  type: string;
  status?: string;
  reason?: string;
  members?: Array<{ userId: string }>;
  member?: { userId: string; region: string; state: Record<string, unknown> };
}

function jsonLines(lines: readonly string[]): JsonLine[] {
  return lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as JsonLine);
}

function sdkClient(user: string, region: string): HaloClient {
  const client = connect({
    url: server.httpUrl,
    user,
    region,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
  });
  clients.push(client);
  return client;
}

interface PresenceJson {
  consistency: string;
  members: Array<{ userId: string; region: string; status: string; state: { name?: string } }>;
}

describe("halo CLI against wrangler dev", () => {
  it("regions --json lists every configured region; the text table too", async () => {
    // Right after start the directory may not have heard from every peer yet: ask again.
    const regions = await runCliUntil(
      ["regions", "--json"],
      (stdout) => {
        const table = JSON.parse(stdout) as {
          answeredBy: string;
          regions: Array<{ region: string; status: string }>;
        };
        const names = table.regions.map((entry) => entry.region).sort();
        return names.length === 3 ? table : null;
      },
      "three regions in the table",
    );
    expect(regions.answeredBy).toBe("wnam");
    expect(regions.regions.map((entry) => entry.region).sort()).toEqual(["apac", "weur", "wnam"]);
    // A loaded machine may starve a directory's gossip for a moment: suspect is a fair answer.
    for (const entry of regions.regions) expect(["alive", "suspect"]).toContain(entry.status);
    expect(regions.regions.find((entry) => entry.region === "wnam")?.status).toBe("alive");

    // The text table from apac's directory, which learns of the others on its own schedule.
    const text = await runCliUntil(
      ["regions", "--region", "apac"],
      (stdout) =>
        ["wnam", "weur", "apac"].every((region) =>
          new RegExp(`\\n${region}\\s+(alive|suspect)\\b`).test(stdout),
        )
          ? stdout
          : null,
      "every region in apac's table",
    );
    expect(text).toMatch(/^answered by apac/);
    expect(text).toMatch(/REGION\s+STATUS\s+INCARNATION\s+HEARTBEAT\s+HEARD\s+SHARDS\s+LOAD/);

    // --watch: a JSON line per poll with its time, and --for ends it by itself.
    const watched = await runCli([
      "regions",
      "--watch",
      "--json",
      "--interval",
      "250",
      "--for",
      "1.5",
    ]);
    expect(watched.code).toBe(0);
    const polls = watched.stdout
      .split("\n")
      .map((line) => JSON.parse(line) as { at: string; regions: unknown[] });
    expect(polls.length).toBeGreaterThanOrEqual(3);
    expect(
      polls.every((poll) => poll.regions.length === 3 && !Number.isNaN(Date.parse(poll.at))),
    ).toBe(true);
  });

  it("presence lists a stock client's member, and an SDK client's from another region", async () => {
    const room = "cli-presence";
    const provider = new WebsocketProvider(server.roomsUrl, room, new Y.Doc(), {
      WebSocketPolyfill: WebSocket as unknown as PolyfillOption,
      disableBc: true,
      params: { user: "cli-ada", region: "wnam" },
    });
    providers.push(provider);
    provider.awareness.setLocalState({ name: "Ada" });
    const sdkRoom = sdkClient("cli-grace", "apac").room(room, { presence: { name: "Grace" } });
    await until(() => provider.wsconnected && sdkRoom.status === "connected", "both connected");

    const local = await runCliUntil(
      ["presence", room, "--json", "--region", "wnam"],
      (stdout) => {
        const answer = JSON.parse(stdout) as PresenceJson;
        return answer.members.some((member) => member.userId === "cli-ada") ? answer : null;
      },
      "cli-ada in the presence answer",
    );
    const ada = local.members.find((member) => member.userId === "cli-ada");
    expect(ada).toMatchObject({ region: "wnam", status: "present", state: { name: "Ada" } });

    const all = await runCliUntil(
      ["presence", room, "--json", "--region", "wnam", "--consistency", "all"],
      (stdout) => {
        const answer = JSON.parse(stdout) as PresenceJson;
        return answer.members.some((member) => member.userId === "cli-grace") ? answer : null;
      },
      "cli-grace (apac) in the consistency=all answer",
    );
    expect(all.consistency).toBe("all");
    expect(all.members.find((member) => member.userId === "cli-grace")?.region).toBe("apac");

    const text = await runCli(["presence", room, "--region", "wnam", "--consistency", "all"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/USER\s+NAME\s+REGION\s+STATUS\s+JOINED/);
    expect(text.stdout).toMatch(/cli-ada\s+-\s+wnam\s+present/);
    expect(text.stdout).toMatch(/cli-grace\s+-\s+apac\s+present/);
    expect(text.stdout).toMatch(/2 members$/);
    sdkRoom.destroy();
  });

  it("watch --json --for: the members, then a join and a leave, then stops by itself", async () => {
    const room = "cli-watch";
    const cli = startCli(["watch", room, "--json", "--for", "10"]);
    await until(() => jsonLines(cli.lines).some((line) => line.type === "members"), "members");
    expect(jsonLines(cli.lines).find((line) => line.type === "members")?.members).toEqual([]);

    const joiner = sdkClient("cli-lin", "weur").room(room, { presence: { name: "Lin" } });
    await until(() => jsonLines(cli.lines).some((line) => line.type === "join"), "the join");
    joiner.destroy();
    await until(() => jsonLines(cli.lines).some((line) => line.type === "leave"), "the leave");

    const code = await cli.exited;
    expect(cli.stderr()).toBe("");
    expect(code).toBe(0);
    const events = jsonLines(cli.lines);
    const kinds = events.map((line) => line.type);
    expect(kinds.indexOf("join")).toBeLessThan(kinds.indexOf("leave"));
    const join = events.find((line) => line.type === "join");
    expect(join?.member).toMatchObject({
      userId: "cli-lin",
      region: "weur",
      state: { name: "Lin" },
    });
    const leave = events.find((line) => line.type === "leave");
    expect(leave).toMatchObject({ member: { userId: "cli-lin" }, reason: "left" });
    expect(events.at(-1)).toMatchObject({ type: "connection", status: "disconnected" });
  });

  it("watch stops cleanly on Ctrl-C (SIGINT) with exit 0", async () => {
    const room = "cli-watch-sigint";
    const member = sdkClient("cli-kay", "wnam").room(room, { presence: { name: "Kay" } });
    const cli = startCli(["watch", room]);
    // The text form: the members line, then the table with the member already there.
    await until(
      () => cli.lines.some((line) => /^\s+cli-kay\s+-\s+wnam\s+present/.test(line)),
      "the table",
    );
    expect(cli.lines.some((line) => /\d\d:\d\d:\d\d\.\d{3}\s+members\s+1 member$/.test(line))).toBe(
      true,
    );
    cli.child.kill("SIGINT");
    const code = await cli.exited;
    expect(code).toBe(0);
    expect(cli.lines.at(-1)).toMatch(/connection\s+disconnected$/);
    member.destroy();
  });

  it("a bad command line exits 2, a refusal or an unreachable server 1, each with a clear message", async () => {
    const unusedPort = await freePort();
    const [unknown, noRoom, badUrl, refused, unreachable] = await Promise.all([
      runCli(["frobnicate"]),
      runCli(["presence"]),
      runCli(["regions", "--url", "not a url"]),
      runCli(["presence", "cli-room", "--region", "oc"]),
      runCli(["regions", "--url", `http://127.0.0.1:${unusedPort}`]),
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(
      /^halo: unknown command "frobnicate" \(one of presence, watch, regions, help\)/,
    );
    expect(noRoom.code).toBe(2);
    expect(noRoom.stderr).toMatch(/presence: missing room/);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/--url "not a url": not an http\(s\) or ws\(s\) URL/);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the server refused: 400 region_not_configured: region "oc"/);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    for (const result of [unknown, noRoom, badUrl, refused, unreachable])
      expect(result.stdout).toBe("");
  });
});
