import { describe, expect, it } from "vitest";
import { busiestRooms } from "../../src/rebalance/busiest-rooms";

describe("busiestRooms", () => {
  it("names the rooms with the most frames and the most sockets, busiest by frames first", () => {
    const rates = [
      { room: "chatty", messagesPerSecond: 900 },
      { room: "quiet", messagesPerSecond: 1 },
    ];
    const connections = [
      { room: "crowd", connections: 400 },
      { room: "chatty", connections: 12 },
      { room: "empty", connections: 0 },
    ];
    expect(busiestRooms(rates, connections, 2)).toEqual([
      { room: "chatty", connections: 12, messagesPerSecond: 900 },
      { room: "quiet", connections: 0, messagesPerSecond: 1 },
      { room: "crowd", connections: 400, messagesPerSecond: 0 },
    ]);
  });

  it("keeps at most `limit` of each kind, so the list stays short on a shard of many rooms", () => {
    const connections = Array.from({ length: 50 }, (_, i) => ({ room: `r${i}`, connections: i }));
    const rates = Array.from({ length: 50 }, (_, i) => ({ room: `s${i}`, messagesPerSecond: i }));
    const top = busiestRooms(rates, connections, 3);
    expect(top.map((r) => r.room)).toEqual(["s49", "s48", "s47", "r49", "r48", "r47"]);
  });
});
