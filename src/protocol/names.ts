/**
 * The characters room names and anonymous user ids may use: what a URL path segment or query
 * value carries without escaping (plus `:` for namespaces such as `team:doc-42`, and `@` in
 * user ids), so a name reads the same in a URL, a log line and a Durable Object key. Plain
 * patterns, so the SDK checks names before it opens a socket without shipping zod.
 */
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9._~:-]+$/;
export const MAX_ROOM_NAME_LENGTH = 128;
export const USER_ID_PATTERN = /^[A-Za-z0-9._~:@-]+$/;
export const MAX_USER_ID_LENGTH = 128;

/** Why `name` is not a valid room name, or null when it is. */
export function roomNameProblem(name: string): string | null {
  if (name.length === 0) return "room name is empty";
  if (name.length > MAX_ROOM_NAME_LENGTH)
    return `room name is longer than ${MAX_ROOM_NAME_LENGTH} characters`;
  if (!ROOM_NAME_PATTERN.test(name)) return "room name may contain only A-Z a-z 0-9 . _ ~ : -";
  if (name === "." || name === "..") return "room name may not be . or ..";
  return null;
}

/** Why `user` is not a valid anonymous user id, or null when it is. */
export function userIdProblem(user: string): string | null {
  if (user.length === 0) return "user is empty";
  if (user.length > MAX_USER_ID_LENGTH)
    return `user is longer than ${MAX_USER_ID_LENGTH} characters`;
  if (!USER_ID_PATTERN.test(user)) return "user may contain only A-Z a-z 0-9 . _ ~ : @ -";
  return null;
}
