import type { Member, User } from "./presence-schema";

/**
 * The users view: members grouped by `userId`. A user is `present` while any of its members
 * is, joined when its first member joined, and carries the name and info of its newest member.
 */
export function userOf(userId: string, members: readonly Member[]): User | null {
  if (members.length === 0) return null;
  const newest = members.reduce((a, b) => (b.joinedAt > a.joinedAt ? b : a));
  return {
    userId,
    ...(newest.name !== undefined ? { name: newest.name } : {}),
    ...(newest.user !== undefined ? { user: newest.user } : {}),
    status: members.some((m) => m.status === "present") ? "present" : "reconnecting",
    joinedAt: Math.min(...members.map((m) => m.joinedAt)),
    connections: members.length,
    clientIds: members.map((m) => m.clientId).sort((a, b) => a - b),
  };
}

/** Every user of a set of members, ordered by first join, then userId. */
export function usersOf(members: Iterable<Member>): User[] {
  const byUser = new Map<string, Member[]>();
  for (const member of members) {
    const list = byUser.get(member.userId);
    if (list) list.push(member);
    else byUser.set(member.userId, [member]);
  }
  return [...byUser]
    .map(([userId, list]) => userOf(userId, list) as User)
    .sort((a, b) => a.joinedAt - b.joinedAt || (a.userId < b.userId ? -1 : 1));
}
