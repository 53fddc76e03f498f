import type { PresenceEvent } from "../../src/presence/presence-schema";

/** Events as short strings for assertions: the type, plus a leave's reason or the new status. */
export function summary(events: readonly PresenceEvent[]): string[] {
  return events.map((e) => {
    if (e.type === "member.leave" || e.type === "user.leave") return `${e.type}:${e.reason}`;
    if (e.type === "member.status") return `${e.type}:${e.member.status}`;
    if (e.type === "user.status") return `${e.type}:${e.user.status}`;
    return e.type;
  });
}
