/** One room's share of a shard's load, as operators see it (`GET /v1/admin/shards`). */
export interface BusyRoom {
  room: string;
  connections: number;
  messagesPerSecond: number;
}

/**
 * A shard's busiest rooms: those with the most client frames a second over the last report
 * interval and those with the most sockets now (`limit` of each), busiest by frames first. A
 * hot shard whose load is one room shows it here: resizing cannot split a room.
 */
export function busiestRooms(
  rates: ReadonlyArray<{ room: string; messagesPerSecond: number }>,
  connections: ReadonlyArray<{ room: string; connections: number }>,
  limit = 5,
): BusyRoom[] {
  const rate = new Map(rates.map((r) => [r.room, r.messagesPerSecond]));
  const sockets = new Map(connections.map((r) => [r.room, r.connections]));
  const crowded = [...connections].sort((a, b) => b.connections - a.connections).slice(0, limit);
  const top = [...rates].sort((a, b) => b.messagesPerSecond - a.messagesPerSecond).slice(0, limit);
  const names = new Set([...top.map((r) => r.room), ...crowded.map((r) => r.room)]);
  return [...names]
    .map((room) => ({
      room,
      connections: sockets.get(room) ?? 0,
      messagesPerSecond: rate.get(room) ?? 0,
    }))
    .sort((a, b) => b.messagesPerSecond - a.messagesPerSecond || b.connections - a.connections);
}
