import { useEffect, useState } from "react";
import type { LeaveReason } from "../client/index";
import { useRoom } from "../client/react";
import { type DemoMember, displayName } from "./demo-presence";

const KEEP = 6;

interface Entry {
  id: number;
  at: number;
  text: string;
  kind: "join" | "leave" | "status";
}

/** The room's last few joins, leaves (with the server's reason) and status changes. */
export function ActivityLog() {
  const room = useRoom();
  const [entries, setEntries] = useState<Entry[]>([]);

  useEffect(() => {
    let next = 0;
    const add = (kind: Entry["kind"], text: string) =>
      setEntries((old) => [{ id: next++, at: Date.now(), text, kind }, ...old].slice(0, KEEP));
    const name = (member: DemoMember) => `${displayName(member)} (${member.region})`;
    const offs = [
      room.presence.on("join", (member) => add("join", `${name(member as DemoMember)} joined`)),
      room.presence.on("leave", (member, reason: LeaveReason) =>
        add("leave", `${name(member as DemoMember)} left: ${reason}`),
      ),
      room.presence.on("status", (member) =>
        add("status", `${name(member as DemoMember)} is ${member.status}`),
      ),
    ];
    return () => {
      for (const off of offs) off();
    };
  }, [room]);

  if (entries.length === 0) return null;
  return (
    <ol className="activity" data-testid="activity">
      {entries.map((entry) => (
        <li key={entry.id} className={`activity-${entry.kind}`}>
          <time>{new Date(entry.at).toLocaleTimeString()}</time> {entry.text}
        </li>
      ))}
    </ol>
  );
}
