import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { configFromEnv } from "../../src/config/config-schema";
import { PING_FRAME, PONG_FRAME } from "../../src/protocol/liveness";
import { shardFor } from "../../src/routing/shard-router";
import { eventually, TestClient } from "./client";

const stubOf = (room: string) =>
  env.SHARD.get(env.SHARD.idFromName(shardFor(room, "wnam", configFromEnv(env)).name));

describe("liveness ping (the platform's WebSocket auto-response)", () => {
  it("answers `ping` with `pong`, and the socket stays open and keeps syncing", async () => {
    const room = "liveness-ping";
    const pinger = await TestClient.connect(room, "?user=pinger");
    const other = await TestClient.connect(room, "?user=other");
    await eventually(() => pinger.frames.length >= 1, 2000, "sync step 1");
    pinger.send(PING_FRAME);
    await eventually(() => pinger.texts.length === 1, 2000, "the pong");
    expect(pinger.texts).toEqual([PONG_FRAME]);
    pinger.send(PING_FRAME);
    pinger.send(PING_FRAME);
    await eventually(() => pinger.texts.length === 3, 2000, "two more pongs");

    pinger.doc.getText("t").insert(0, "still syncing");
    await eventually(() => other.text === "still syncing", 2000, "the edit after pings");
    other.doc.getText("t").insert(0, ">");
    await eventually(() => pinger.text === ">still syncing", 2000, "the edit back");
    expect(pinger.closeEvent).toBeNull();
    // The runtime answered the pings itself: it records when it last did, per socket.
    const answered = await runInDurableObject(stubOf(room), (_instance, state) =>
      state.getWebSockets(room).map((ws) => state.getWebSocketAutoResponseTimestamp(ws)),
    );
    expect(answered.filter((at) => at !== null)).toHaveLength(1);
    pinger.close();
    other.close();
  });

  it("answers `ping` while the shard is hibernated (evicted), without the shard's handlers", async () => {
    const room = "liveness-hibernated";
    const client = await TestClient.connect(room, "?user=sleeper");
    await eventually(() => client.frames.length >= 1, 2000, "sync step 1");
    await evictDurableObject(stubOf(room));
    client.send(PING_FRAME);
    await eventually(() => client.texts.length === 1, 2000, "the pong from a hibernated shard");
    expect(client.texts).toEqual([PONG_FRAME]);
    expect(client.closeEvent).toBeNull();
    client.close();
  });

  it("still closes any other text frame with 1003", async () => {
    for (const [i, text] of ["hello", "PING", "ping ", "pong"].entries()) {
      const client = await TestClient.connect(`liveness-text-${i}`, "?user=texter");
      await eventually(() => client.frames.length >= 1, 2000, "sync step 1");
      client.send(text);
      expect(await client.closedWith()).toEqual({
        code: 1003,
        reason: "text frames are not part of the protocol; send binary y-websocket messages",
      });
      expect(client.texts).toEqual([]);
    }
  });
});
