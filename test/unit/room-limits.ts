import type { RoomLimits } from "../../src/core/room-replica";

/**
 * Room limits for unit tests: small frames and states, and rate limits generous enough that
 * only the tests written for them (with their own limits and clock) ever meet them.
 */
export const TEST_ROOM_LIMITS: RoomLimits = {
  maxFrameBytes: 64 * 1024,
  maxAwarenessStateBytes: 1024,
  maxClientIdsPerConnection: 1,
  compactAfterUpdates: 1000,
  compactAfterBytes: 1 << 20,
  maxConnectionsPerRoom: 100,
  messagesPerSecond: 1000,
  messageBurst: 100_000,
  maxDocumentBytes: 1 << 24,
  snapshotPageBytes: 256 * 1024,
};
