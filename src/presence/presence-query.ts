import { z } from "zod";
import { roomNameSchema } from "../http/room-name";
import {
  type Member,
  memberStatusSchema,
  type PresenceSnapshot,
  type User,
} from "./presence-schema";

/** `GET /v1/rooms/:room/presence` query parameters (the routing ones, token and region, are read elsewhere). */
export const presenceQuerySchema = z.object({
  view: z.enum(["members", "users"]).default("members"),
  /** Only this user's members (or this user). */
  userId: z.string().min(1).max(256).optional(),
  /** Only members connected in this region (users with a member there). */
  memberRegion: z.string().min(1).max(16).optional(),
  status: memberStatusSchema.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** From a previous page's `nextCursor`. */
  cursor: z.string().min(1).max(512).optional(),
  /** `1`: counts only. */
  count: z.enum(["1", "true"]).optional(),
  /**
   * `local` (default): the nearest replica's global view, at once. `all`: every region that may
   * serve is asked for its own members first (slower, fresher); the answer says who answered.
   */
  consistency: z.enum(["local", "all"]).default("local"),
});
export type PresenceQuery = z.infer<typeof presenceQuerySchema>;

export type PresencePage =
  | { version: number; counts: { members: number; users: number; reconnecting: number } }
  | { version: number; view: "members"; total: number; members: Member[]; nextCursor?: string }
  | { version: number; view: "users"; total: number; users: User[]; nextCursor?: string };

/** Thrown for a cursor this code did not hand out; the Worker answers 400 naming `cursor`. */
export class BadCursor extends Error {
  override readonly name = "BadCursor";
}

/**
 * One page of a room's presence. Pages are keyed by (joinedAt, clientId or userId), the order
 * of the snapshot, so a member joining or leaving between two requests never shifts the
 * next page: keyset paging, not offsets.
 */
export function presencePage(
  snapshot: PresenceSnapshot,
  query: Omit<PresenceQuery, "consistency">,
): PresencePage {
  const members = snapshot.members.filter(
    (m) =>
      (query.userId === undefined || m.userId === query.userId) &&
      (query.memberRegion === undefined || m.region === query.memberRegion) &&
      (query.status === undefined || m.status === query.status),
  );
  const userIds = new Set(members.map((m) => m.userId));
  const users = snapshot.users.filter(
    (u) => userIds.has(u.userId) && (query.status === undefined || u.status === query.status),
  );
  if (query.count !== undefined) {
    return {
      version: snapshot.seq,
      counts: {
        members: members.length,
        users: users.length,
        reconnecting: members.filter((m) => m.status === "reconnecting").length,
      },
    };
  }
  const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
  if (query.view === "users") {
    const page = pageAfter(users, after, (u) => [u.joinedAt, u.userId], query.limit);
    return {
      version: snapshot.seq,
      view: "users",
      total: users.length,
      users: page.items,
      ...page.next,
    };
  }
  const page = pageAfter(members, after, (m) => [m.joinedAt, m.clientId], query.limit);
  return {
    version: snapshot.seq,
    view: "members",
    total: members.length,
    members: page.items,
    ...page.next,
  };
}

type SortKey = [number, number | string];

function pageAfter<T>(
  items: readonly T[],
  after: SortKey | null,
  keyOf: (item: T) => SortKey,
  limit: number,
): { items: T[]; next: { nextCursor?: string } } {
  const start = after === null ? 0 : items.findIndex((item) => compareKeys(keyOf(item), after) > 0);
  const from = start === -1 ? items.length : start;
  const page = items.slice(from, from + limit);
  const last = page.at(-1);
  const more = from + limit < items.length;
  return {
    items: page,
    next: more && last !== undefined ? { nextCursor: encodeCursor(keyOf(last)) } : {},
  };
}

function compareKeys(a: SortKey, b: SortKey): number {
  if (a[0] !== b[0]) return a[0] - b[0];
  if (a[1] === b[1]) return 0;
  return a[1] < b[1] ? -1 : 1;
}

const cursorSchema = z.tuple([z.number(), z.union([z.number(), z.string()])]);

function encodeCursor(key: SortKey): string {
  return btoa(JSON.stringify(key)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string): SortKey {
  try {
    const parsed = cursorSchema.safeParse(
      JSON.parse(atob(cursor.replace(/-/g, "+").replace(/_/g, "/"))),
    );
    if (parsed.success) return parsed.data;
  } catch {
    // fall through: not base64 or not JSON
  }
  throw new BadCursor("cursor is not one this endpoint handed out");
}

/** `GET /v1/rooms/:room/presence/history` query parameters. */
export const historyQuerySchema = z.object({
  /** Events after this presence version (sequence number): a previous response's `version` or `nextCursor`. */
  since: z.coerce.number().int().nonnegative().optional(),
  /** Events at or after this time (Unix ms). */
  from: z.coerce.number().int().nonnegative().optional(),
  /** Events before this time (Unix ms). */
  to: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type HistoryRequest = z.infer<typeof historyQuerySchema>;

/** Most rooms one `POST /v1/presence/query` may name. */
export const MAX_ROOMS_PER_QUERY = 100;

/** `POST /v1/presence/query`: presence of many rooms in one call. */
export const multiRoomQuerySchema = z
  .object({
    rooms: z.array(roomNameSchema).min(1).max(MAX_ROOMS_PER_QUERY),
    view: z.enum(["counts", "members"]).default("counts"),
    userId: z.string().min(1).max(256).optional(),
  })
  .strict();
