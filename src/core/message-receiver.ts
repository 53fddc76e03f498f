import type { AwarenessEntry } from "../protocol/awareness-codec";
import type { ControlMessage } from "../protocol/extension-messages";
import type { IncomingMessage } from "../protocol/incoming-message";
import type { ConnectionId } from "./awareness-table";

/** What a room does with each kind of client message (implemented by `RoomReplica`). */
export interface MessageTarget {
  answerSyncStep1(connectionId: ConnectionId, stateVector: Uint8Array): void;
  applyClientUpdate(connectionId: ConnectionId, update: Uint8Array): void;
  applyClientAwareness(connectionId: ConnectionId, entries: readonly AwarenessEntry[]): void;
  answerQueryAwareness(connectionId: ConnectionId): void;
  applyControl(connectionId: ConnectionId, message: ControlMessage): void;
}

/** Routes a decoded client message to its handler; sync step 2 and update are the same operation for a server. */
export function receiveMessage(
  target: MessageTarget,
  connectionId: ConnectionId,
  message: IncomingMessage,
): void {
  switch (message.type) {
    case "sync-step1":
      target.answerSyncStep1(connectionId, message.stateVector);
      return;
    case "sync-step2":
    case "sync-update":
      target.applyClientUpdate(connectionId, message.update);
      return;
    case "awareness":
      target.applyClientAwareness(connectionId, message.entries);
      return;
    case "query-awareness":
      target.answerQueryAwareness(connectionId);
      return;
    case "control":
      target.applyControl(connectionId, message.message);
      return;
  }
}
