import type { GossipSettings } from "../../src/membership/membership-node";

/** Fast gossip for membership cores under test: rounds of 100 ms, a suspicion within 300 ms. */
export const TEST_GOSSIP: GossipSettings = {
  gossipIntervalMs: 100,
  fanout: 3,
  suspectAfterMs: 300,
  suspicionMinMs: 200,
  suspicionMaxMs: 1000,
  suspicionConfirmations: 3,
  ackTimeoutMs: 100,
  maxHealthScore: 8,
};
