import { describe, expect, it } from "vitest";
import { DEFAULT_URL, parseInvocation } from "../../src/cli/args";
import { CliError, describeError, EXIT_USAGE } from "../../src/cli/cli-error";
import {
  ago,
  duration,
  membersTable,
  presenceReport,
  regionsReport,
  table,
  watchJson,
  watchLines,
} from "../../src/cli/format";
import { main } from "../../src/cli/halo";
import type { Member, PresenceResponse, RegionsResponse } from "../../src/client/index";
import { HaloRequestError } from "../../src/client/index";

/** The usage error `argv` gets (fails the test otherwise). */
function usageOf(argv: string[]): string {
  try {
    parseInvocation(argv);
  } catch (error) {
    if (error instanceof CliError && error.exitCode === EXIT_USAGE) return error.message;
    throw error;
  }
  throw new Error(`expected a usage error for ${argv.join(" ")}`);
}

describe("parseInvocation: commands, options and their checks", () => {
  it("presence with every option; the URL from the flag, then HALO_URL, then the default", () => {
    expect(
      parseInvocation(
        [
          "presence",
          "team:doc-42",
          "--consistency",
          "all",
          "--users",
          "--json",
          "--region",
          "apac",
        ],
        { HALO_URL: "https://halo.example.com", HALO_TOKEN: "t0" },
      ),
    ).toEqual({
      command: "presence",
      global: { url: "https://halo.example.com", token: "t0", region: "apac", json: true },
      room: "team:doc-42",
      consistency: "all",
      users: true,
    });
    const fromFlag = parseInvocation(["presence", "r", "--url", "http://x:1", "--token", "t1"], {
      HALO_URL: "https://halo.example.com",
      HALO_TOKEN: "t0",
    });
    expect(fromFlag).toMatchObject({ global: { url: "http://x:1", token: "t1" } });
    expect(parseInvocation(["presence", "r"], { HALO_URL: "" })).toMatchObject({
      global: { url: DEFAULT_URL, token: undefined, region: undefined, json: false },
      consistency: undefined,
      users: false,
    });
  });

  it("watch --for in seconds; regions --watch with its interval", () => {
    expect(parseInvocation(["watch", "r", "--for", "2.5"])).toMatchObject({
      command: "watch",
      room: "r",
      forMs: 2500,
    });
    expect(parseInvocation(["watch", "r"])).toMatchObject({ forMs: null });
    expect(parseInvocation(["regions"])).toMatchObject({ watch: false, intervalMs: 2000 });
    expect(parseInvocation(["regions", "-w", "--interval", "500", "--for", "3"])).toMatchObject({
      watch: true,
      intervalMs: 500,
      forMs: 3000,
    });
  });

  it("help in its three spellings", () => {
    expect(parseInvocation(["help"])).toEqual({ command: "help", topic: null });
    expect(parseInvocation(["--help"])).toEqual({ command: "help", topic: null });
    expect(parseInvocation(["help", "watch"])).toEqual({ command: "help", topic: "watch" });
    expect(parseInvocation(["regions", "-h"])).toEqual({ command: "help", topic: "regions" });
  });

  it("refuses what it cannot run, saying what and pointing at the help", () => {
    expect(usageOf([])).toMatch(/^missing command/);
    expect(usageOf(["frobnicate"])).toMatch(/^unknown command "frobnicate"/);
    expect(usageOf(["frobnicate"])).toMatch(/Run "halo help" for usage\.$/);
    expect(usageOf(["presence"])).toMatch(/^presence: missing room/);
    expect(usageOf(["watch", "a", "b"])).toMatch(/^watch takes one room, got 2/);
    expect(usageOf(["presence", "no spaces"])).toMatch(/^room "no spaces": room name may contain/);
    expect(usageOf(["presence", ".."])).toMatch(/may not be \. or \.\./);
    expect(usageOf(["presence", "r", "--url", "ftp://x"])).toMatch(/^--url "ftp:\/\/x": not an/);
    expect(() => parseInvocation(["regions"], { HALO_URL: "nope" })).toThrow(/^HALO_URL "nope"/);
    expect(usageOf(["presence", "r", "--region", "mars"])).toMatch(/not a region \(one of wnam/);
    expect(usageOf(["presence", "r", "--consistency", "most"])).toMatch(/must be local or all/);
    expect(usageOf(["watch", "r", "--for", "soon"])).toMatch(/^--for "soon": must be a number/);
    expect(usageOf(["watch", "r", "--for=0"])).toMatch(/more than 0 seconds/);
    expect(usageOf(["regions", "--watch", "--interval", "10"])).toMatch(/at least 250 ms/);
    expect(usageOf(["regions", "--interval", "500"])).toBe(
      '--interval needs --watch\nRun "halo help" for usage.',
    );
    expect(usageOf(["regions", "--for", "5"])).toMatch(/^--for needs --watch/);
    expect(usageOf(["regions", "extra"])).toMatch(/^regions takes no arguments/);
    expect(usageOf(["regions", "--users"])).toMatch(/^--users is not an option of regions/);
    expect(usageOf(["watch", "r", "--consistency", "all"])).toMatch(/not an option of watch/);
    expect(usageOf(["presence", "r", "--bogus"])).toBe(
      `Unknown option '--bogus'\nRun "halo help" for usage.`,
    );
  });
});

describe("describeError: one line an operator can act on", () => {
  it("names the server's code, or why the server could not be reached", () => {
    expect(describeError(new HaloRequestError(403, "forbidden", "no read right"), "u")).toBe(
      "the server refused: 403 forbidden: no read right",
    );
    const refused = new TypeError("fetch failed", {
      cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    });
    expect(describeError(refused, "http://127.0.0.1:9")).toBe(
      "cannot reach http://127.0.0.1:9 (ECONNREFUSED)",
    );
  });
});

describe("main: exit codes and where the messages go", () => {
  it("a usage error goes to stderr with exit 2; help to stdout with exit 0", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const output = { line: (t: string) => out.push(t), error: (t: string) => err.push(t) };
    const stop = new AbortController().signal;
    expect(await main(["nope"], {}, output, stop)).toBe(2);
    expect(err[0]).toMatch(/^halo: unknown command "nope"/);
    expect(out).toEqual([]);
    expect(await main(["help", "presence"], {}, output, stop)).toBe(0);
    expect(out[0]).toMatch(/^halo presence <room>/);
  });
});

const NOW = Date.UTC(2026, 10, 24, 15, 4, 5, 123);

function member(overrides: Partial<Member> = {}): Member {
  return {
    clientId: 7,
    userId: "ada",
    name: "Ada",
    connectionId: "c1",
    region: "wnam",
    joinedAt: NOW - 75_000,
    updatedAt: NOW - 1000,
    status: "present",
    state: { cursor: { x: 1 } },
    ...overrides,
  };
}

describe("formatting", () => {
  it("table: aligned columns, right-aligned numbers, no trailing spaces", () => {
    expect(
      table(
        [{ header: "NAME" }, { header: "N", align: "right" }, { header: "NOTE" }],
        [
          ["a", "1", ""],
          ["long name", "100", "x"],
        ],
      ),
    ).toEqual(["NAME         N  NOTE", "a            1", "long name  100  x"]);
  });

  it("durations and ages", () => {
    expect(duration(850)).toBe("850ms");
    expect(duration(12_400)).toBe("12s");
    expect(duration(184_000)).toBe("3m 4s");
    expect(duration(7_500_000)).toBe("2h 5m");
    expect(duration(100 * 3_600_000)).toBe("4d 4h");
    expect(duration(-5)).toBe("0ms");
    expect(ago(NOW - 75_000, NOW)).toBe("1m 15s ago");
    expect(ago(NOW + 300, NOW)).toBe("just now"); // the server's clock a little ahead
  });

  it("members: who, where, status with the grace left, joined ago", () => {
    expect(
      membersTable(
        [
          member(),
          member({
            clientId: 12345,
            userId: "grace",
            name: undefined,
            region: "apac",
            status: "reconnecting",
            reconnectingUntil: NOW + 9_000,
          }),
        ],
        NOW,
      ),
    ).toEqual([
      "USER   NAME  REGION  STATUS                      JOINED  CLIENT",
      "ada    Ada   wnam    present                 1m 15s ago       7",
      "grace  -     apac    reconnecting (9s left)  1m 15s ago   12345",
    ]);
  });

  it("a presence answer: where it came from, the table, what was left out", () => {
    const response: PresenceResponse = {
      room: "r",
      region: "wnam",
      shard: "shard:wnam:1",
      consistency: "all",
      sources: [
        { region: "apac", members: 0, heardAt: null, ageMs: null, answered: false },
        { region: "wnam", members: 1, heardAt: NOW, ageMs: 0 },
      ],
      version: 42,
      view: "members",
      total: 150,
      members: [member()],
      nextCursor: "abc",
    };
    const lines = presenceReport(response, NOW);
    expect(lines[0]).toBe("room r on shard:wnam:1, consistency all, version 42");
    expect(lines[1]).toBe("sources: apac 0 (did not answer), wnam 1 (0ms old)");
    expect(lines.at(-1)).toBe("1 of 150 members shown (the first page)");
    expect(presenceReport({ ...response, total: 0, members: [] }, NOW).at(-1)).toBe("no members");
  });

  it("the regions table, sorted, with accusers", () => {
    const entry = {
      status: "alive" as const,
      incarnation: 3,
      heartbeat: 40,
      contentAt: 0,
      shards: 4,
      shardEpoch: 0,
      previousShards: [],
      load: { connections: 1, rooms: 1 },
      hotShards: [],
      changedAt: 0,
      accusers: [],
      lastHeardMsAgo: 400,
      configured: true,
      drain: null,
    };
    const response: RegionsResponse = {
      answeredBy: "wnam",
      incarnation: 3,
      health: 0,
      clientRegion: "wnam",
      regions: [
        { ...entry, region: "wnam", lastHeardMsAgo: 0 },
        { ...entry, region: "apac", status: "suspect", accusers: ["weur", "wnam"] },
      ],
    };
    expect(regionsReport(response)).toEqual([
      "answered by wnam (incarnation 3, health 0); new clients from here go to wnam",
      "REGION  STATUS                   INCARNATION  HEARTBEAT      HEARD  SHARDS  LOAD            CONFIGURED",
      "apac    suspect (by weur, wnam)            3         40  400ms ago       4  1 conn, 1 room  yes",
      "wnam    alive                              3         40          -       4  1 conn, 1 room  yes",
    ]);
  });

  it("watch events as text lines and as JSON lines", () => {
    expect(watchLines({ type: "leave", member: member(), reason: "timeout" }, NOW)).toEqual([
      "15:04:05.123  leave       ada (Ada) timeout",
    ]);
    expect(watchLines({ type: "members", members: [member()] }, NOW)).toEqual([
      "15:04:05.123  members     1 member",
      "  USER  NAME  REGION  STATUS       JOINED  CLIENT",
      "  ada   Ada   wnam    present  1m 15s ago       7",
    ]);
    expect(watchLines({ type: "update", member: member() }, NOW)).toEqual([
      '15:04:05.123  update      ada (Ada) {"cursor":{"x":1}}',
    ]);
    expect(JSON.parse(watchJson({ type: "connection", status: "connected" }, NOW))).toEqual({
      at: "2026-11-24T15:04:05.123Z",
      type: "connection",
      status: "connected",
    });
  });
});
