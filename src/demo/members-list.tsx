import { useMembers, useRoom } from "../client/react";
import { ActivityLog } from "./activity-log";
import { type DemoMember, type DemoPresence, displayColor, displayName } from "./demo-presence";

/** Everyone in the room, as the server knows them: name, region, status, and which one is you. */
export function MembersList() {
  const room = useRoom();
  const members = useMembers<Partial<DemoPresence>>();
  const me = room.presence.clientId;
  return (
    <section className="panel">
      <h2>
        In the room <span className="count">{members.length}</span>
      </h2>
      {!room.presence.ready && members.length === 0 ? (
        <p className="muted">Joining…</p>
      ) : (
        <ul className="members" data-testid="members">
          {members.map((member) => (
            <MemberRow key={member.clientId} member={member} you={member.clientId === me} />
          ))}
        </ul>
      )}
      <ActivityLog />
    </section>
  );
}

function MemberRow({ member, you }: { member: DemoMember; you: boolean }) {
  const name = displayName(member);
  return (
    <li
      className="member"
      data-testid={`member-${member.clientId}`}
      data-client-id={member.clientId}
      data-name={name}
      data-region={member.region}
      data-status={member.status}
      data-you={you ? "true" : "false"}
    >
      <span className="avatar" style={{ background: displayColor(member) }} aria-hidden="true">
        {initials(name)}
      </span>
      <span className="member-name">
        {name}
        {you ? <span className="you">you</span> : null}
      </span>
      <span className="region-badge">{member.region}</span>
      <span className={`member-status status-${member.status}`}>{member.status}</span>
    </li>
  );
}

function initials(name: string): string {
  const words = name.split(/[\s_.-]+/).filter((word) => word !== "");
  return (
    words
      .slice(0, 2)
      .map((word) => word[0]?.toUpperCase() ?? "")
      .join("") || "?"
  );
}
