import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { ownerIndex } from "../../src/routing/shard-layout";
import { SimRandom } from "./random";
import { RebalanceCluster } from "./rebalance-cluster";
import { forEachSeedAsync, SIM_TEST_TIMEOUT_MS } from "./seeds";

/**
 * Random resizes of one region's shards during random edits, lost calls and crashes (DESIGN.md,
 * "Routing"; invariants 2 and 6). After the faults heal and the operator's call is repeated,
 * every room lives on exactly the shard jump hash names, holding every edit a shard ever
 * acknowledged, and no other shard keeps a copy: no room is served by two shards with
 * divergent state once its move completes.
 */

const ROOMS = 12;

async function scenario(seed: number): Promise<void> {
  const random = new SimRandom(seed);
  const cluster = new RebalanceCluster(random.fork("cluster"), 1 + random.int(5), {
    requestLoss: random.between(0, 0.15),
    replyLoss: random.between(0, 0.15),
    maxDelayMs: random.between(1, 80),
    crashChance: random.between(0, 0.3),
    tableLagMs: random.between(0, 300),
  });
  const rooms = Array.from({ length: ROOMS }, (_, i) => `room-${i}`);
  const writers = rooms.map((room, i) => {
    const doc = new Y.Doc();
    doc.clientID = 1_000 + i;
    return { room, doc, unacked: [] as Uint8Array[] };
  });
  for (const writer of writers) {
    writer.doc.on("update", (update: Uint8Array) => writer.unacked.push(update));
  }
  const flush = (writer: (typeof writers)[number]) => {
    for (const update of [...writer.unacked]) {
      void cluster.write(writer.room, update).then((stored) => {
        if (stored) writer.unacked = writer.unacked.filter((u) => u !== update);
      });
    }
  };

  const faultyUntil = 8_000;
  for (let t = 0; t < faultyUntil; t += 100) {
    cluster.after(t, () => {
      const writer = random.pick(writers);
      const text = writer.doc.getText("t");
      text.insert(random.int(text.length + 1), String.fromCharCode(97 + random.int(26)));
      flush(random.pick(writers));
      if (random.chance(0.04)) cluster.resize(1 + random.int(6));
      if (random.chance(cluster.faults.crashChance / 10)) cluster.crash(random.int(8));
    });
  }
  await cluster.runUntil(faultyUntil);

  // Heal: no more loss or lag; every writer resends until stored; the operator calls again.
  cluster.faults = { requestLoss: 0, replyLoss: 0, maxDelayMs: 5, crashChance: 0, tableLagMs: 0 };
  for (let round = 0; round < 20 && writers.some((w) => w.unacked.length > 0); round++) {
    for (const writer of writers) flush(writer);
    await cluster.runUntil(cluster.now + 2_000);
  }
  cluster.kick();
  await cluster.runUntil(cluster.now + 5_000);

  const layout = cluster.layout;
  for (const writer of writers) {
    expect(writer.unacked, `${writer.room}: edits never stored`).toEqual([]);
    const owner = ownerIndex(writer.room, layout);
    expect(
      cluster.storedText(owner, writer.room) ?? "",
      `${writer.room} on its owner ${owner}`,
    ).toBe(writer.doc.getText("t").toString());
    for (let index = 0; index < cluster.shards.length; index++) {
      if (index === owner) continue;
      expect(
        cluster.storedText(index, writer.room),
        `${writer.room}: a copy on ${index}`,
      ).toBeNull();
      expect(cluster.shards[index]?.out.has(writer.room)).toBe(false);
    }
  }
}

describe("rebalance simulator", () => {
  it(
    "random resizes during edits, loss and crashes: one holder per room, no edit lost",
    async () => {
      const { seeds } = await forEachSeedAsync("rebalance", scenario);
      expect(seeds).toBeGreaterThan(0);
    },
    SIM_TEST_TIMEOUT_MS,
  );
});
