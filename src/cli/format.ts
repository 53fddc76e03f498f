import type {
  ConnectionStatus,
  LeaveReason,
  Member,
  PresenceResponse,
  RegionsResponse,
  User,
} from "../client/index";

/** Where a command writes: lines to stdout, diagnostics to stderr. */
export interface Output {
  line(text: string): void;
  error(text: string): void;
}

export interface Column {
  header: string;
  align?: "left" | "right";
}

/** An aligned text table: a header row, then one row per entry; two spaces between columns. */
export function table(columns: readonly Column[], rows: readonly (readonly string[])[]): string[] {
  const widths = columns.map((column, i) =>
    Math.max(column.header.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const render = (cells: readonly string[]) =>
    columns
      .map((column, i) => {
        const cell = cells[i] ?? "";
        const width = widths[i] ?? 0;
        return column.align === "right" ? cell.padStart(width) : cell.padEnd(width);
      })
      .join("  ")
      .trimEnd();
  return [render(columns.map((column) => column.header)), ...rows.map(render)];
}

/** A duration, coarse as people read it: `850ms`, `12s`, `3m 4s`, `2h 5m`, `3d 4h`. */
export function duration(ms: number): string {
  const value = Math.max(0, Math.round(ms));
  if (value < 1000) return `${value}ms`;
  const seconds = Math.floor(value / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** How long ago `at` was (both Unix ms); a server clock slightly ahead reads as `just now`. */
export function ago(at: number, now: number): string {
  return now - at < 1000 ? "just now" : `${duration(now - at)} ago`;
}

/** The time of day of a Unix ms instant, UTC (as the Worker's logs have it): `15:04:05.123`. */
export function clock(at: number): string {
  return new Date(at).toISOString().slice(11, 23);
}

/** A JSON value on one line, shortened to `max` characters for a text line. */
export function compactJson(value: unknown, max = 80): string {
  const text = JSON.stringify(value) ?? "null";
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function memberStatus(member: Member, now: number): string {
  if (member.status !== "reconnecting") return member.status;
  return member.reconnectingUntil === undefined
    ? "reconnecting"
    : `reconnecting (${duration(member.reconnectingUntil - now)} left)`;
}

/** Members as a table: who, from where, in what state, since when. */
export function membersTable(members: readonly Member[], now: number): string[] {
  return table(
    [
      { header: "USER" },
      { header: "NAME" },
      { header: "REGION" },
      { header: "STATUS" },
      { header: "JOINED", align: "right" },
      { header: "CLIENT", align: "right" },
    ],
    members.map((member) => [
      member.userId,
      member.name ?? "-",
      member.region,
      memberStatus(member, now),
      ago(member.joinedAt, now),
      String(member.clientId),
    ]),
  );
}

/** Users (a user's tabs grouped) as a table. */
export function usersTable(users: readonly User[], now: number): string[] {
  return table(
    [
      { header: "USER" },
      { header: "NAME" },
      { header: "STATUS" },
      { header: "CONNECTIONS", align: "right" },
      { header: "JOINED", align: "right" },
    ],
    users.map((user) => [
      user.userId,
      user.name ?? "-",
      user.status,
      String(user.connections),
      ago(user.joinedAt, now),
    ]),
  );
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** A presence answer for people: where it came from, the table, and what it left out. */
export function presenceReport(response: PresenceResponse, now: number): string[] {
  const lines: string[] = [];
  const sources = response.sources
    .map((source) => {
      const freshness =
        source.answered === false
          ? "did not answer"
          : source.answered
            ? "answered"
            : source.ageMs === null
              ? "never heard"
              : `${duration(source.ageMs)} old`;
      return `${source.region} ${source.members} (${freshness})`;
    })
    .join(", ");
  lines.push(
    `room ${response.room} on ${response.shard}, consistency ${response.consistency}, version ${response.version}`,
  );
  if (sources !== "") lines.push(`sources: ${sources}`);
  if ("counts" in response) {
    const { members, users, reconnecting } = response.counts;
    lines.push(
      `${plural(members, "member")}, ${plural(users, "user")}, ${reconnecting} reconnecting`,
    );
    return lines;
  }
  const shown = response.view === "users" ? response.users.length : response.members.length;
  const noun = response.view === "users" ? "user" : "member";
  if (response.total === 0) {
    lines.push(`no ${noun}s`);
    return lines;
  }
  lines.push(
    ...(response.view === "users"
      ? usersTable(response.users, now)
      : membersTable(response.members, now)),
  );
  lines.push(
    shown < response.total
      ? `${shown} of ${plural(response.total, noun)} shown (the first page)`
      : plural(response.total, noun),
  );
  return lines;
}

/** The region-membership table for people, with who answered and where new clients go. */
export function regionsReport(response: RegionsResponse): string[] {
  const rows = [...response.regions]
    .sort((a, b) => a.region.localeCompare(b.region))
    .map((entry) => [
      entry.region,
      entry.accusers.length > 0
        ? `${entry.status} (by ${entry.accusers.join(", ")})`
        : entry.drain
          ? `${entry.status} (${entry.drain})`
          : entry.status,
      String(entry.incarnation),
      String(entry.heartbeat),
      entry.region === response.answeredBy ? "-" : `${duration(entry.lastHeardMsAgo)} ago`,
      String(entry.shards),
      `${plural(entry.load.connections, "conn")}, ${plural(entry.load.rooms, "room")}`,
      entry.configured ? "yes" : "no",
    ]);
  return [
    `answered by ${response.answeredBy} (incarnation ${response.incarnation}, health ${response.health}); new clients from here go to ${response.clientRegion}`,
    ...table(
      [
        { header: "REGION" },
        { header: "STATUS" },
        { header: "INCARNATION", align: "right" },
        { header: "HEARTBEAT", align: "right" },
        { header: "HEARD", align: "right" },
        { header: "SHARDS", align: "right" },
        { header: "LOAD" },
        { header: "CONFIGURED" },
      ],
      rows,
    ),
  ];
}

/** What `watch` reports, one line (or one JSON object) each. */
export type WatchEvent =
  | { type: "connection"; status: ConnectionStatus }
  | { type: "members"; members: Member[] }
  | { type: "join" | "update" | "status"; member: Member }
  | { type: "leave"; member: Member; reason: LeaveReason }
  | { type: "error"; message: string };

function who(member: Member): string {
  return member.name === undefined ? member.userId : `${member.userId} (${member.name})`;
}

/** A watch event for people: time, kind, then what happened; a members list brings its table. */
export function watchLines(event: WatchEvent, at: number): string[] {
  const line = (kind: string, detail: string) => `${clock(at)}  ${kind.padEnd(10)}  ${detail}`;
  switch (event.type) {
    case "connection":
      return [line("connection", event.status)];
    case "members":
      return [
        line(
          "members",
          event.members.length === 0 ? "nobody here" : plural(event.members.length, "member"),
        ),
        ...(event.members.length === 0
          ? []
          : membersTable(event.members, at).map((row) => `  ${row}`)),
      ];
    case "join":
      return [
        line(
          "join",
          `${who(event.member)} from ${event.member.region}, client ${event.member.clientId}`,
        ),
      ];
    case "update":
      return [line("update", `${who(event.member)} ${compactJson(event.member.state)}`)];
    case "status":
      return [
        line(
          "status",
          `${who(event.member)} ${memberStatus(event.member, at)} in ${event.member.region}`,
        ),
      ];
    case "leave":
      return [line("leave", `${who(event.member)} ${event.reason}`)];
    case "error":
      return [line("error", event.message)];
  }
}

/** A watch event for machines: one JSON object with its ISO time, on one line. */
export function watchJson(event: WatchEvent, at: number): string {
  return JSON.stringify({ at: new Date(at).toISOString(), ...event });
}
