import type { PresenceSnapshot } from "./presence-schema";

/** One page of a snapshot: its part of the members and users, and where it sits among the pages. */
export interface SnapshotPage {
  snapshot: PresenceSnapshot;
  page: number;
  pages: number;
}

/**
 * Splits a snapshot into pages of at most about `maxBytes` of JSON each (a member larger than
 * that gets a page of its own), so a large room's snapshot never exceeds what one WebSocket
 * message may carry. Members and users are paged together, in order; every page carries the
 * snapshot's sequence number, so a client knows the pages belong together.
 */
export function pageSnapshot(snapshot: PresenceSnapshot, maxBytes: number): SnapshotPage[] {
  const items = [
    ...snapshot.members.map((member) => ({ kind: "member" as const, value: member })),
    ...snapshot.users.map((user) => ({ kind: "user" as const, value: user })),
  ];
  const parts: PresenceSnapshot[] = [];
  let current: PresenceSnapshot = { seq: snapshot.seq, members: [], users: [] };
  let bytes = 0;
  for (const item of items) {
    const size = JSON.stringify(item.value).length + 1;
    if (bytes > 0 && bytes + size > maxBytes) {
      parts.push(current);
      current = { seq: snapshot.seq, members: [], users: [] };
      bytes = 0;
    }
    if (item.kind === "member") current.members.push(item.value);
    else current.users.push(item.value);
    bytes += size;
  }
  parts.push(current);
  return parts.map((part, page) => ({ snapshot: part, page, pages: parts.length }));
}
