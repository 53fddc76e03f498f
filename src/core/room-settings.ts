import { graceFor, type HaloConfig } from "../config/config-schema";
import type { PresenceOptions } from "../presence/presence-roster";
import type { FanoutOptions } from "./fanout-batch";
import type { ReplicationOptions, RoomLimits } from "./room-replica";

/**
 * What configuration says about one room: its limits, its presence settings (its grace comes
 * from the first `presence.graceByRoom` pattern it matches), and, when this deployment
 * replicates and the shard knows its region, the replication settings.
 */
export function roomSettings(
  name: string,
  config: HaloConfig,
  region: string | undefined,
): {
  limits: RoomLimits;
  presence: PresenceOptions;
  fanout: FanoutOptions;
  replication?: ReplicationOptions;
} {
  const { limits, presence } = config;
  const replicates = config.regions.length > 1 && region !== undefined;
  return {
    limits,
    fanout: config.fanout,
    presence: {
      graceMs: graceFor(name, presence),
      movedGraceMs: config.rebalance.movedGraceMs,
      historyFlushMs: presence.historyFlushMs,
      coalesceAboveMembers: presence.coalesceAboveMembers,
      coalesceWindowMs: presence.coalesceWindowMs,
      webhookEvents: new Set(presence.webhook?.events ?? []),
    },
    ...(replicates ? { replication: { region, batchMs: config.replication.batchMs } } : {}),
  };
}
