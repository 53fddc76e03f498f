import { describe, expect, it } from "vitest";
import type { ConnectionIdentity } from "../../src/auth/authenticate";
import {
  type PresenceOptions,
  type PresenceOwner,
  PresenceRoster,
  SEQ_STEPS_PER_MS,
} from "../../src/presence/presence-roster";
import { MemoryPresenceStore } from "../../src/presence/presence-store";
import { pageSnapshot } from "../../src/presence/snapshot-pages";
import { summary } from "../support/presence-events";

const ROOM = "team:doc";
const T0 = 1_700_000_000_000;
const OPTIONS: PresenceOptions = { graceMs: 15_000, historyFlushMs: 2_000 };

function identity(userId: string, extra: Partial<ConnectionIdentity> = {}): ConnectionIdentity {
  return { userId, rights: ["read", "write", "presence"], expiresAt: null, ...extra };
}

function owner(connectionId: string, userId: string, region = "weur"): PresenceOwner {
  return { connectionId, region, identity: identity(userId, { name: `${userId} (name)` }) };
}

function open(store = new MemoryPresenceStore(), options = OPTIONS, now = T0) {
  return PresenceRoster.load(ROOM, store, options, now, []).roster;
}

describe("PresenceRoster: joins, updates and leaves", () => {
  it("a first announce joins the member and its user; server fields come from the connection", () => {
    const roster = open();
    const events = roster.announce(owner("c1", "ada"), 11, JSON.stringify({ cursor: 3 }), T0 + 5);
    expect(summary(events)).toEqual(["member.join", "user.join"]);
    const [join, userJoin] = events;
    expect(join).toMatchObject({
      seq: T0 * SEQ_STEPS_PER_MS + 1,
      at: T0 + 5,
      member: {
        clientId: 11,
        userId: "ada",
        name: "ada (name)",
        connectionId: "c1",
        region: "weur",
        joinedAt: T0 + 5,
        updatedAt: T0 + 5,
        status: "present",
        state: { cursor: 3 },
      },
    });
    expect(userJoin).toMatchObject({
      seq: T0 * SEQ_STEPS_PER_MS + 2,
      user: { userId: "ada", status: "present", connections: 1, clientIds: [11] },
    });
  });

  it("a state change is one member.update, never a leave plus a join; the same state is no event", () => {
    const roster = open();
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({ cursor: 3 }), T0);
    expect(
      summary(roster.announce(owner("c1", "ada"), 11, JSON.stringify({ cursor: 4 }), T0 + 10)),
    ).toEqual(["member.update"]);
    expect(roster.announce(owner("c1", "ada"), 11, JSON.stringify({ cursor: 4 }), T0 + 20)).toEqual(
      [],
    );
    const [member] = roster.memberList();
    expect(member).toMatchObject({ joinedAt: T0, updatedAt: T0 + 10, state: { cursor: 4 } });
  });

  it("a null state leaves with `left`; a clean close with `closed`", () => {
    const roster = open();
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    roster.announce(owner("c2", "bob"), 22, JSON.stringify({}), T0);
    expect(summary(roster.withdraw(11, T0 + 1))).toEqual(["member.leave:left", "user.leave:left"]);
    expect(summary(roster.connectionGone("c2", true, T0 + 2))).toEqual([
      "member.leave:closed",
      "user.leave:closed",
    ]);
    expect(roster.memberList()).toEqual([]);
  });

  it("the connection's identity cannot be overridden by the state a client sets", () => {
    const roster = open();
    roster.announce(
      owner("c1", "ada"),
      11,
      JSON.stringify({ userId: "mallory", status: "present" }),
      T0,
    );
    const [member] = roster.memberList();
    expect(member?.userId).toBe("ada");
    expect(member?.state).toEqual({ userId: "mallory", status: "present" });
  });
});

describe("PresenceRoster: disconnect grace", () => {
  it("an abrupt drop marks the member reconnecting; the same client back within the grace takes over with no leave or join", () => {
    const roster = open();
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({ cursor: 1 }), T0);
    expect(summary(roster.connectionGone("c1", false, T0 + 100))).toEqual([
      "member.status:reconnecting",
      "user.status:reconnecting",
    ]);
    expect(roster.memberList()[0]).toMatchObject({
      status: "reconnecting",
      reconnectingUntil: T0 + 100 + 15_000,
    });
    expect(roster.nextDeadline()).toBe(T0 + 100 + 15_000);
    const back = roster.announce(
      owner("c9", "ada", "wnam"),
      11,
      JSON.stringify({ cursor: 1 }),
      T0 + 5_000,
    );
    expect(summary(back)).toEqual(["member.status:present", "user.status:present"]);
    const [member] = roster.memberList();
    expect(member).toMatchObject({
      connectionId: "c9",
      region: "wnam",
      joinedAt: T0,
      status: "present",
    });
    expect(member?.reconnectingUntil).toBeUndefined();
    expect(roster.nextDeadline()).toBeNull();
    expect(roster.expire(T0 + 60_000)).toEqual([]);
  });

  it("a takeover with a different state also reports the update", () => {
    const roster = open();
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({ cursor: 1 }), T0);
    roster.connectionGone("c1", false, T0);
    expect(
      summary(roster.announce(owner("c2", "ada"), 11, JSON.stringify({ cursor: 2 }), T0 + 1)),
    ).toEqual(["member.status:present", "member.update", "user.status:present"]);
  });

  it("after the grace the member leaves with `timeout`, exactly once", () => {
    const roster = open();
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    roster.connectionGone("c1", false, T0);
    expect(roster.expire(T0 + 14_999)).toEqual([]);
    expect(summary(roster.expire(T0 + 15_000))).toEqual([
      "member.leave:timeout",
      "user.leave:timeout",
    ]);
    expect(roster.expire(T0 + 30_000)).toEqual([]);
    // Coming back later is a new join.
    expect(
      summary(roster.announce(owner("c2", "ada"), 11, JSON.stringify({}), T0 + 40_000)),
    ).toEqual(["member.join", "user.join"]);
  });

  it("a grace of 0 leaves at once with `timeout`", () => {
    const roster = open(new MemoryPresenceStore(), { ...OPTIONS, graceMs: 0 });
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    expect(summary(roster.connectionGone("c1", false, T0))).toEqual([
      "member.leave:timeout",
      "user.leave:timeout",
    ]);
  });

  it("another user's client cannot take over a reconnecting member: the old one times out, the new one joins", () => {
    const roster = open();
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    roster.connectionGone("c1", false, T0);
    expect(summary(roster.announce(owner("c2", "eve"), 11, JSON.stringify({}), T0 + 1))).toEqual([
      "member.leave:timeout",
      "user.leave:timeout",
      "member.join",
      "user.join",
    ]);
  });
});

describe("PresenceRoster: the users view", () => {
  it("two tabs of one user: one user.join, connection counts as user.update, one user.leave", () => {
    const roster = open();
    expect(summary(roster.announce(owner("tab1", "ada"), 11, JSON.stringify({}), T0))).toEqual([
      "member.join",
      "user.join",
    ]);
    const second = roster.announce(owner("tab2", "ada"), 12, JSON.stringify({}), T0 + 1);
    expect(summary(second)).toEqual(["member.join", "user.update"]);
    expect(second[1]).toMatchObject({
      user: { connections: 2, clientIds: [11, 12], joinedAt: T0 },
    });
    expect(roster.snapshot().users).toHaveLength(1);
    expect(summary(roster.connectionGone("tab1", true, T0 + 2))).toEqual([
      "member.leave:closed",
      "user.update",
    ]);
    expect(summary(roster.connectionGone("tab2", true, T0 + 3))).toEqual([
      "member.leave:closed",
      "user.leave:closed",
    ]);
  });

  it("a user stays present while any of its members is", () => {
    const roster = open();
    roster.announce(owner("tab1", "ada"), 11, JSON.stringify({}), T0);
    roster.announce(owner("tab2", "ada"), 12, JSON.stringify({}), T0);
    expect(summary(roster.connectionGone("tab1", false, T0 + 1))).toEqual([
      "member.status:reconnecting",
    ]);
    expect(roster.snapshot().users[0]?.status).toBe("present");
    expect(summary(roster.connectionGone("tab2", false, T0 + 2))).toEqual([
      "member.status:reconnecting",
      "user.status:reconnecting",
    ]);
  });

  it("the snapshot lists members by join time and users with the newest member's name", () => {
    const roster = open();
    roster.announce(owner("c2", "bob"), 22, JSON.stringify({ b: 1 }), T0 + 2);
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({ a: 1 }), T0 + 1);
    const snapshot = roster.snapshot();
    expect(snapshot.seq).toBe(roster.version);
    expect(snapshot.members.map((m) => m.clientId)).toEqual([11, 22]);
    expect(snapshot.users.map((u) => [u.userId, u.name])).toEqual([
      ["ada", "ada (name)"],
      ["bob", "bob (name)"],
    ]);
  });
});

describe("PresenceRoster: sequence numbers, storage and history", () => {
  it("every event takes the next sequence number", () => {
    const roster = open();
    const events = [
      ...roster.announce(owner("c1", "ada"), 11, JSON.stringify({}), T0),
      ...roster.announce(owner("c1", "ada"), 11, JSON.stringify({ x: 1 }), T0),
      ...roster.connectionGone("c1", false, T0),
      ...roster.expire(T0 + 20_000),
    ];
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] as number) + i));
  });

  it("membership changes are written at once; updates only with the next write or after historyFlushMs", () => {
    const store = new MemoryPresenceStore();
    const roster = open(store);
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({ v: 0 }), T0);
    expect(store.writes).toBe(1);
    for (let v = 1; v <= 5; v++)
      roster.announce(owner("c1", "ada"), 11, JSON.stringify({ v }), T0 + v);
    expect(store.writes).toBe(1); // no write per cursor move
    expect(roster.nextDeadline()).toBe(T0 + 1 + 2_000);
    expect(roster.expire(T0 + 1_000)).toEqual([]);
    expect(store.writes).toBe(1);
    roster.expire(T0 + 2_001);
    expect(store.writes).toBe(2);
    const history = store.history(ROOM, { limit: 100 });
    // The updates are coalesced: the history keeps the newest of the window.
    expect(summary(history)).toEqual(["member.join", "user.join", "member.update"]);
    expect(history[2]).toMatchObject({ member: { state: { v: 5 } } });
    expect(store.load(ROOM).members[0]?.state).toEqual({ v: 5 });
  });

  it("waiting updates are written with the next membership change, in sequence order", () => {
    const store = new MemoryPresenceStore();
    const roster = open(store);
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({ v: 0 }), T0);
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({ v: 1 }), T0 + 1);
    roster.announce(owner("c2", "bob"), 22, JSON.stringify({}), T0 + 2);
    const history = store.history(ROOM, { limit: 100 });
    expect(summary(history)).toEqual([
      "member.join",
      "user.join",
      "member.update",
      "member.join",
      "user.join",
    ]);
    expect(history.map((e) => e.seq)).toEqual([...history.map((e) => e.seq)].sort((a, b) => a - b));
  });

  it("a reload continues above every sequence number handed out, written or not", () => {
    const store = new MemoryPresenceStore();
    const first = open(store, OPTIONS, T0);
    first.announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    for (let v = 0; v < 50; v++)
      first.announce(owner("c1", "ada"), 11, JSON.stringify({ v }), T0 + 1);
    const handedOut = first.version;
    const second = PresenceRoster.load(ROOM, store, OPTIONS, T0 + 10, [
      { ...owner("c1", "ada"), clients: [{ clientId: 11, json: JSON.stringify({ v: 49 }) }] },
    ]).roster;
    expect(second.version).toBeGreaterThan(handedOut);
  });
});

describe("PresenceRoster.load", () => {
  it("after hibernation, members whose sockets are still open stay present, with their live state, and no event", () => {
    const store = new MemoryPresenceStore();
    const before = open(store);
    before.announce(owner("c1", "ada"), 11, JSON.stringify({ v: 0 }), T0);
    before.announce(owner("c1", "ada"), 11, JSON.stringify({ v: 1 }), T0 + 1); // not written yet
    const { roster, events } = PresenceRoster.load(ROOM, store, OPTIONS, T0 + 30_000, [
      { ...owner("c1", "ada"), clients: [{ clientId: 11, json: JSON.stringify({ v: 1 }) }] },
    ]);
    expect(events).toEqual([]);
    expect(roster.memberList()[0]).toMatchObject({ status: "present", state: { v: 1 } });
  });

  it("after a restart (no sockets), present members start their grace at load and leave when it ends", () => {
    const store = new MemoryPresenceStore();
    open(store).announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    const { roster, events } = PresenceRoster.load(ROOM, store, OPTIONS, T0 + 1_000, []);
    expect(summary(events)).toEqual(["member.status:reconnecting", "user.status:reconnecting"]);
    expect(roster.nextDeadline()).toBe(T0 + 1_000 + 15_000);
    // The client reconnects to the restarted shard within the grace: no leave, no join.
    expect(
      summary(roster.announce(owner("c2", "ada"), 11, JSON.stringify({}), T0 + 2_000)),
    ).toEqual(["member.status:present", "user.status:present"]);
  });

  it("members handed over with a moved room stay present while their clients reconnect: no event at all", () => {
    const store = new MemoryPresenceStore();
    const old = open(store);
    old.announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    old.announce(owner("c2", "bob"), 22, JSON.stringify({}), T0);
    const moved = { ...OPTIONS, movedGraceMs: 5_000 };
    const { roster, events } = PresenceRoster.load(
      ROOM,
      store,
      moved,
      T0 + 100,
      [],
      new Set([11, 22]),
    );
    expect(events).toEqual([]);
    expect(roster.memberList().map((m) => m.status)).toEqual(["present", "present"]);
    expect(roster.nextDeadline()).toBe(T0 + 100 + 5_000);
    // Ada is back on the new shard: a takeover with no status event (she never left).
    expect(roster.announce(owner("c3", "ada"), 11, JSON.stringify({}), T0 + 300)).toEqual([]);
    expect(store.load(ROOM).members.find((m) => m.clientId === 11)?.connectionId).toBe("c3");
    // Bob is not back by the moved grace: his own grace starts then, as for any dropped line.
    expect(summary(roster.expire(T0 + 100 + 5_000))).toEqual([
      "member.status:reconnecting",
      "user.status:reconnecting",
    ]);
    expect(summary(roster.expire(T0 + 100 + 5_000 + 15_000))).toEqual([
      "member.leave:timeout",
      "user.leave:timeout",
    ]);
  });

  it("another user's client under a moved member's clientID does not take it over", () => {
    const store = new MemoryPresenceStore();
    open(store).announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    const moved = { ...OPTIONS, movedGraceMs: 5_000 };
    const { roster } = PresenceRoster.load(ROOM, store, moved, T0, [], new Set([11]));
    expect(summary(roster.announce(owner("c9", "eve"), 11, JSON.stringify({}), T0 + 10))).toEqual([
      "member.leave:timeout",
      "user.leave:timeout",
      "member.join",
      "user.join",
    ]);
  });

  it("a grace that ran out while the room was unloaded ends at load", () => {
    const store = new MemoryPresenceStore();
    const roster = open(store);
    roster.announce(owner("c1", "ada"), 11, JSON.stringify({}), T0);
    roster.connectionGone("c1", false, T0);
    const reloaded = PresenceRoster.load(ROOM, store, OPTIONS, T0 + 20_000, []);
    expect(summary(reloaded.events)).toEqual(["member.leave:timeout", "user.leave:timeout"]);
    expect(reloaded.roster.memberList()).toEqual([]);
    expect(store.load(ROOM).members).toEqual([]);
  });
});

describe("pageSnapshot", () => {
  it("splits members and users into pages under the byte budget, in order, all with one seq", () => {
    const roster = open();
    for (let i = 0; i < 40; i++)
      roster.announce(
        owner(`c${i}`, `u${i % 10}`),
        i + 1,
        JSON.stringify({ pad: "x".repeat(100) }),
        T0 + i,
      );
    const snapshot = roster.snapshot();
    const pages = pageSnapshot(snapshot, 2048);
    expect(pages.length).toBeGreaterThan(3);
    expect(pages.map((p) => [p.page, p.pages])).toEqual(pages.map((_, i) => [i, pages.length]));
    expect(pages.every((p) => p.snapshot.seq === snapshot.seq)).toBe(true);
    expect(pages.flatMap((p) => p.snapshot.members)).toEqual(snapshot.members);
    expect(pages.flatMap((p) => p.snapshot.users)).toEqual(snapshot.users);
    for (const p of pages)
      expect(JSON.stringify([...p.snapshot.members, ...p.snapshot.users]).length).toBeLessThan(
        2048 + 400,
      );
  });

  it("an empty room is one empty page", () => {
    const pages = pageSnapshot({ seq: 5, members: [], users: [] }, 1024);
    expect(pages).toEqual([{ snapshot: { seq: 5, members: [], users: [] }, page: 0, pages: 1 }]);
  });
});

describe("PresenceRoster: large rooms coalesce updates", () => {
  const LARGE: PresenceOptions = { ...OPTIONS, coalesceAboveMembers: 2, coalesceWindowMs: 200 };

  function crowd(store = new MemoryPresenceStore()) {
    const roster = open(store, LARGE);
    for (const [i, user] of ["ada", "bob", "cy"].entries())
      roster.announce(owner(`c${i}`, user), i + 1, JSON.stringify({ v: 0 }), T0);
    return roster;
  }

  it("holds state updates for the window, then sends one per member with its latest state", () => {
    const roster = crowd();
    for (let v = 1; v <= 5; v++) {
      expect(roster.announce(owner("c0", "ada"), 1, JSON.stringify({ v }), T0 + v)).toEqual([]);
      expect(roster.announce(owner("c1", "bob"), 2, JSON.stringify({ v: v * 10 }), T0 + v)).toEqual(
        [],
      );
    }
    expect(roster.nextFlush()).toBe(T0 + 1 + 200);
    expect(roster.expire(T0 + 100)).toEqual([]);
    const released = roster.expire(T0 + 201);
    expect(released.map((e) => [e.type, "member" in e ? e.member.state : null])).toEqual([
      ["member.update", { v: 5 }],
      ["member.update", { v: 50 }],
    ]);
    const seqs = released.map((e) => e.seq);
    expect(seqs[1]).toBe((seqs[0] as number) + 1);
    expect(roster.expire(T0 + 1_000)).toEqual([]);
  });

  it("a leave drops the member's held update: no update ever follows a leave", () => {
    const roster = crowd();
    roster.announce(owner("c0", "ada"), 1, JSON.stringify({ v: 1 }), T0 + 1);
    expect(summary(roster.connectionGone("c0", true, T0 + 2))).toEqual([
      "member.leave:closed",
      "user.leave:closed",
    ]);
    expect(roster.expire(T0 + 500)).toEqual([]);
  });

  it("small rooms send every update at once", () => {
    const roster = open(new MemoryPresenceStore(), LARGE);
    roster.announce(owner("c0", "ada"), 1, JSON.stringify({ v: 0 }), T0);
    expect(
      summary(roster.announce(owner("c0", "ada"), 1, JSON.stringify({ v: 1 }), T0 + 1)),
    ).toEqual(["member.update"]);
  });
});
