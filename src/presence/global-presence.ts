import type { PresenceSource } from "../core/room-replica";
import type { Member, PresenceSnapshot } from "./presence-schema";
import { usersOf } from "./user-view";

/** One region's part in a presence answer: how many members it gave, and how fresh they are. */
export interface SourceReport {
  region: string;
  members: number;
  /** When the answering replica last heard from that region (Unix ms), or null if never. */
  heardAt: number | null;
  /** How old that news is at the time of the answer (ms), or null if never heard. */
  ageMs: number | null;
  /** With `consistency=all`: whether the region itself answered in time. */
  answered?: boolean;
}

/** `consistency=local`: the nearest replica's view as it stands, with how fresh each region's part is. */
export function localSources(sources: readonly PresenceSource[], at: number): SourceReport[] {
  return sources.map((source) => ({
    ...source,
    ageMs: source.heardAt === null ? null : Math.max(0, at - source.heardAt),
  }));
}

/**
 * `consistency=all`: each region that answered speaks for its own members; for a region that
 * did not, the nearest replica's copy stands in (and says so). Members are keyed by clientID;
 * the answering owner's record wins over a copy.
 */
export function mergeRegionAnswers(
  local: { snapshot: PresenceSnapshot; sources: readonly PresenceSource[]; at: number },
  answers: ReadonlyArray<{ region: string; members: readonly Member[] | null }>,
): { snapshot: PresenceSnapshot; sources: SourceReport[] } {
  const answered = new Map(
    answers.flatMap((a) => (a.members === null ? [] : [[a.region, a.members] as const])),
  );
  const byClient = new Map<number, Member>();
  for (const member of local.snapshot.members)
    if (!answered.has(member.region)) byClient.set(member.clientId, member);
  for (const members of answered.values())
    for (const member of members) byClient.set(member.clientId, member);
  const members = [...byClient.values()].sort(
    (a, b) => a.joinedAt - b.joinedAt || a.clientId - b.clientId,
  );
  const counts = new Map<string, number>();
  for (const member of members) counts.set(member.region, (counts.get(member.region) ?? 0) + 1);
  const heard = new Map(local.sources.map((s) => [s.region, s.heardAt]));
  const regions = new Set([...heard.keys(), ...answers.map((a) => a.region)]);
  const sources = [...regions].sort().map((region) => {
    const isAnswer = answered.has(region);
    const heardAt = isAnswer ? local.at : (heard.get(region) ?? null);
    const asked = answers.some((a) => a.region === region);
    return {
      region,
      members: counts.get(region) ?? 0,
      heardAt,
      ageMs: heardAt === null ? null : Math.max(0, local.at - heardAt),
      ...(asked ? { answered: isAnswer } : {}),
    };
  });
  return { snapshot: { seq: local.snapshot.seq, members, users: usersOf(members) }, sources };
}
