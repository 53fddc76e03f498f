// Per-message cost of the room core alone (no sockets, no runtime), side by side with what the
// reference y-websocket server does per message (y-protocols Awareness / Y.applyUpdate), in one
// process, interleaved rounds, medians.
//
//   npx tsx bench/core.ts

import { cpus } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as encoding from "lib0/encoding";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import type { Right } from "../src/auth/capabilities";
import { parseConfig } from "../src/config/config-schema";
import { RoomReplica } from "../src/core/room-replica";
import { MemoryPresenceStore } from "../src/presence/presence-store";
import { OutgoingMessage } from "../src/protocol/outgoing-message";
import { MemoryRoomStorage } from "../src/storage/memory-room-storage";

// The bench times the core's work per message, so the per-connection rate limit is lifted.
const limits = parseConfig({
  shards: { wnam: 1 },
  limits: { messagesPerSecond: 1e9, messageBurst: 1e9 },
}).limits;
/** A fresh room's dependencies: in-memory storage, so the bench times the core alone. */
function roomDeps() {
  return {
    storage: new MemoryRoomStorage(),
    presenceStore: new MemoryPresenceStore(),
    limits,
    presence: { graceMs: 15_000, historyFlushMs: 2_000 },
  };
}

const EVERYONE = {
  userId: "bench",
  rights: ["read", "write", "presence"] as Right[],
  expiresAt: null,
};
const ROUNDS = 7;

interface Case {
  label: string;
  halo: () => number;
  reference: () => number;
}

/** Awareness updates from C clients round-robin: Halo's RoomReplica against y-protocols' Awareness. */
function awarenessCase(clients: number, messages: number): Case {
  const frames = Array.from({ length: messages }, (_, k) =>
    OutgoingMessage.awareness([
      {
        clientId: (k % clients) + 1,
        clock: 1 + Math.floor(k / clients),
        json: JSON.stringify({ cursor: k, name: `user-${k % clients}` }),
      },
    ]),
  );
  const payloads = frames.map((frame) => frame.subarray(2)); // skip type + length prefix (< 128 bytes)
  return {
    label: `awareness, ${clients} connections`,
    halo() {
      const { room } = RoomReplica.open("bench", roomDeps(), Date.now());
      for (let i = 0; i < clients; i++)
        room.connect({ connectionId: `c${i}`, region: "wnam", joinedAt: 0, identity: EVERYONE });
      const start = performance.now();
      for (let k = 0; k < messages; k++)
        room.receive(`c${k % clients}`, frames[k] as Uint8Array, 0);
      return performance.now() - start;
    },
    reference() {
      // What @y/websocket-server does per awareness message: apply, then encode the changed
      // clients once for the broadcast.
      const doc = new Y.Doc();
      const awareness = new awarenessProtocol.Awareness(doc);
      awareness.setLocalState(null);
      let out = 0;
      awareness.on(
        "update",
        ({
          added,
          updated,
          removed,
        }: {
          added: number[];
          updated: number[];
          removed: number[];
        }) => {
          out += awarenessProtocol.encodeAwarenessUpdate(
            awareness,
            added.concat(updated, removed),
          ).byteLength;
        },
      );
      const start = performance.now();
      for (let k = 0; k < messages; k++)
        awarenessProtocol.applyAwarenessUpdate(awareness, payloads[k] as Uint8Array, null);
      const elapsed = performance.now() - start;
      awareness.destroy();
      if (out === 0) throw new Error("reference produced nothing");
      return elapsed;
    },
  };
}

/** Small text inserts as Yjs updates: Halo (validate, apply, persist, encode) against apply + encode. */
function documentCase(messages: number): Case {
  const source = new Y.Doc();
  const updates: Uint8Array[] = [];
  source.on("update", (update: Uint8Array) => updates.push(update));
  const text = source.getText("t");
  for (let k = 0; k < messages; k++)
    text.insert(Math.floor((k * 7919) % (text.length + 1)), `edit ${k} `);
  const frames = updates.map((update) => {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 0);
    syncProtocol.writeUpdate(encoder, update);
    return encoding.toUint8Array(encoder);
  });
  return {
    label: "document updates (in-memory storage)",
    halo() {
      const { room } = RoomReplica.open("bench", roomDeps(), Date.now());
      room.connect({ connectionId: "c0", region: "wnam", joinedAt: 0, identity: EVERYONE });
      const start = performance.now();
      for (const frame of frames) room.receive("c0", frame, 0);
      return performance.now() - start;
    },
    reference() {
      const doc = new Y.Doc();
      let out = 0;
      doc.on("update", (update: Uint8Array) => {
        const encoder = encoding.createEncoder();
        encoding.writeVarUint(encoder, 0);
        syncProtocol.writeUpdate(encoder, update);
        out += encoding.length(encoder);
      });
      const start = performance.now();
      for (const update of updates) Y.applyUpdate(doc, update);
      const elapsed = performance.now() - start;
      if (out === 0) throw new Error("reference produced nothing");
      return elapsed;
    },
  };
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

export function runCoreBench(): string {
  const cases: Array<{ run: Case; messages: number }> = [
    { run: awarenessCase(50, 50_000), messages: 50_000 },
    { run: awarenessCase(200, 50_000), messages: 50_000 },
    { run: documentCase(20_000), messages: 20_000 },
  ];
  const lines = [
    `### Room core per message (${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)})`,
    "",
    "| case | Halo core µs/msg | reference µs/msg | Halo / reference |",
    "|---|---:|---:|---:|",
  ];
  for (const { run, messages } of cases) {
    run.halo(); // warm-up
    run.reference();
    const halo: number[] = [];
    const reference: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      halo.push(run.halo());
      reference.push(run.reference());
    }
    const h = (median(halo) * 1000) / messages;
    const r = (median(reference) * 1000) / messages;
    lines.push(`| ${run.label} | ${h.toFixed(2)} | ${r.toFixed(2)} | ${(h / r).toFixed(2)}x |`);
  }
  lines.push(
    "",
    `Medians of ${ROUNDS} interleaved rounds after one warm-up. Reference = what @y/websocket-server runs per message (y-protocols Awareness, Y.applyUpdate), without sockets.`,
  );
  return lines.join("\n");
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(runCoreBench());
}
