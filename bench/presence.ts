// Presence snapshots and events, side by side with what the reference server sends for the
// same information (one y-protocols awareness update carrying every state), in one process,
// interleaved rounds, medians. Pure cores only: no sockets, no runtime.
//
//   npx tsx bench/presence.ts

import { cpus } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as awarenessProtocol from "y-protocols/awareness";
import * as Y from "yjs";
import type { ConnectionIdentity } from "../src/auth/authenticate";
import { type PresenceOwner, PresenceRoster } from "../src/presence/presence-roster";
import { MemoryPresenceStore } from "../src/presence/presence-store";
import { pageSnapshot } from "../src/presence/snapshot-pages";
import { OutgoingMessage } from "../src/protocol/outgoing-message";

const ROUNDS = 7;
const T0 = 1_800_000_000_000;
/** The default `limits.snapshotPageBytes`. */
const PAGE_BYTES = 256 * 1024;

function owner(i: number): PresenceOwner {
  const identity: ConnectionIdentity = {
    userId: `user-${i}`,
    name: `User ${i}`,
    rights: ["read", "write", "presence"],
    expiresAt: null,
  };
  return { connectionId: `c${i}`, region: "weur", identity };
}

/** A typical editor state: a name, a colour and a cursor. */
function stateOf(i: number, cursor = i): string {
  return JSON.stringify({
    user: { name: `User ${i}`, color: "#3366ff" },
    cursor: { anchor: cursor, head: cursor },
  });
}

function rosterOf(members: number): PresenceRoster {
  const roster = PresenceRoster.load(
    "bench",
    new MemoryPresenceStore(),
    { graceMs: 15_000, historyFlushMs: 2_000 },
    T0,
    [],
  ).roster;
  for (let i = 0; i < members; i++) roster.announce(owner(i), i + 1, stateOf(i), T0 + i);
  return roster;
}

/** The reference server's view: a y-protocols Awareness holding the same states. */
function awarenessOf(members: number): { awareness: awarenessProtocol.Awareness; ids: number[] } {
  const doc = new Y.Doc();
  const awareness = new awarenessProtocol.Awareness(doc);
  const ids: number[] = [];
  for (let i = 0; i < members; i++) {
    ids.push(i + 1);
    awarenessProtocol.applyAwarenessUpdate(
      awareness,
      awarenessProtocol.encodeAwarenessUpdate(fakeAwareness(i + 1, JSON.parse(stateOf(i))), [
        i + 1,
      ]),
      "bench",
    );
  }
  return { awareness, ids };
}

/** A throwaway awareness with one client's state, to encode an update for it. */
function fakeAwareness(clientId: number, state: unknown): awarenessProtocol.Awareness {
  const doc = new Y.Doc();
  doc.clientID = clientId;
  const awareness = new awarenessProtocol.Awareness(doc);
  awareness.setLocalState(state as Record<string, unknown>);
  clearInterval(
    (awareness as unknown as { _checkInterval: ReturnType<typeof setInterval> })._checkInterval,
  );
  return awareness;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function time(fn: () => void, repeat: number): number {
  const start = performance.now();
  for (let i = 0; i < repeat; i++) fn();
  return (performance.now() - start) / repeat;
}

export function runPresenceBench(): string {
  const lines = [
    `### Presence snapshots and events (${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)})`,
    "",
    "| members | Halo snapshot ms | Halo snapshot bytes | reference snapshot ms | reference bytes | time ratio | bytes ratio |",
    "|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const members of [10, 1_000, 10_000]) {
    const roster = rosterOf(members);
    const { awareness, ids } = awarenessOf(members);
    const repeat = members >= 10_000 ? 3 : members >= 1_000 ? 20 : 500;
    const halo: number[] = [];
    const reference: number[] = [];
    let haloBytes = 0;
    let referenceBytes = 0;
    for (let round = 0; round <= ROUNDS; round++) {
      const h = time(() => {
        haloBytes = 0;
        for (const page of pageSnapshot(roster.snapshot(), PAGE_BYTES))
          haloBytes += OutgoingMessage.extension({ type: "presence.snapshot", ...page }).byteLength;
      }, repeat);
      const r = time(() => {
        referenceBytes = awarenessProtocol.encodeAwarenessUpdate(awareness, ids).byteLength;
      }, repeat);
      if (round > 0) {
        // round 0 warms up
        halo.push(h);
        reference.push(r);
      }
    }
    const h = median(halo);
    const r = median(reference);
    lines.push(
      `| ${members} | ${h.toFixed(3)} | ${haloBytes} | ${r.toFixed(3)} | ${referenceBytes} | ${(h / r).toFixed(2)}x | ${(haloBytes / referenceBytes).toFixed(2)}x |`,
    );
    awareness.destroy();
  }

  // Bytes a subscriber receives per change, beside the awareness frame every client gets anyway.
  const roster = rosterOf(100);
  const events = {
    "join (member + user)": roster.announce(owner(1000), 1001, stateOf(1000), T0 + 1),
    "update (cursor move)": roster.announce(owner(1000), 1001, stateOf(1000, 7), T0 + 2),
    "leave (member + user)": roster.connectionGone("c1000", true, T0 + 3),
  };
  const awarenessBytes = OutgoingMessage.awareness([
    { clientId: 1001, clock: 2, json: stateOf(1000, 7) },
  ]).byteLength;
  lines.push(
    "",
    "| change | Halo events frame bytes | awareness frame bytes (reference) | ratio |",
    "|---|---:|---:|---:|",
  );
  for (const [label, list] of Object.entries(events)) {
    const bytes = OutgoingMessage.extension({ type: "presence.events", events: list }).byteLength;
    lines.push(
      `| ${label} | ${bytes} | ${awarenessBytes} | ${(bytes / awarenessBytes).toFixed(2)}x |`,
    );
  }
  lines.push(
    "",
    `Medians of ${ROUNDS} interleaved rounds after one warm-up. Halo snapshot = PresenceRoster.snapshot() (members and users) paged (256 KiB pages) and encoded as the extension frames a subscriber gets; reference = y-protocols encodeAwarenessUpdate of every state, what @y/websocket-server sends a newcomer. Halo's frame carries the server's fields (userId, name, connection, region, times, status) and the users view on top of the states.`,
  );
  return lines.join("\n");
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(runPresenceBench());
}
