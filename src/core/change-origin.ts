import type { ConnectionId } from "./awareness-table";

/**
 * Where a change to a room came from. Every Yjs transaction carries one, so the update
 * handler knows what to do with it: a change from storage is neither persisted again nor
 * broadcast; a change from a connection is persisted and fanned out.
 * (`peer` arrives with cross-region replication; `handoff` is a room's state brought over
 * from the shard of this region that held it before a resize: this region's own content, so
 * it is persisted, fanned out and sent on to peer regions like a local change.)
 */
export type ChangeOrigin =
  | { kind: "connection"; connectionId: ConnectionId }
  | { kind: "peer"; region: string }
  | { kind: "handoff"; fromShard: number }
  | { kind: "storage" };

export const STORAGE_ORIGIN: ChangeOrigin = Object.freeze({ kind: "storage" });

export function isChangeOrigin(value: unknown): value is ChangeOrigin {
  return typeof value === "object" && value !== null && "kind" in value;
}
