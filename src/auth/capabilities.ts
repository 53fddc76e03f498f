import { z } from "zod";

/** What a token may do in a room (DESIGN.md; Ably's subscribe / publish / presence). */
export const RIGHTS = ["read", "write", "presence"] as const;
export const rightSchema = z.enum(RIGHTS);
export type Right = z.infer<typeof rightSchema>;

/** Longest room pattern in a capability, in characters (a room name is at most 128). */
export const MAX_PATTERN_LENGTH = 256;

/**
 * A capability: room-name patterns mapped to rights, e.g.
 * `{ "team-42:*": ["read", "write", "presence"], "lobby": ["read"] }`.
 * A pattern is a room name in which `*` stands for any run of characters (room names cannot
 * contain `*`, so the syntax is unambiguous).
 */
export const capabilitySchema = z.record(
  z.string().min(1).max(MAX_PATTERN_LENGTH),
  z.array(rightSchema).max(RIGHTS.length),
);
export type Capability = z.infer<typeof capabilitySchema>;

/** The rights a capability grants in `room`: the union over every pattern that matches it. */
export function rightsFor(room: string, capability: Capability): Set<Right> {
  const rights = new Set<Right>();
  for (const [pattern, granted] of Object.entries(capability)) {
    if (matchesPattern(room, pattern)) for (const right of granted) rights.add(right);
  }
  return rights;
}

/** Glob matching with `*` as the only wildcard, without building a regular expression from untrusted text. */
export function matchesPattern(room: string, pattern: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return room === pattern;
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (room.length < first.length + last.length || !room.startsWith(first) || !room.endsWith(last))
    return false;
  // Middle parts must appear in order between the prefix and the suffix; leftmost matches suffice.
  let position = first.length;
  const end = room.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    const found = room.indexOf(part, position);
    if (found === -1 || found + part.length > end) return false;
    position = found + part.length;
  }
  return true;
}
