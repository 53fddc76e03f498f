import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import type * as Y from "yjs";
import type { ServerExtensionMessage } from "../protocol/extension-messages";
import { AuthMessageType, MessageType } from "../protocol/message-types";
import { readExtension } from "./client-frames";

/** What a frame from the server meant, for the layers above the Yjs wiring. */
export type SyncEvent =
  | { type: "synced" }
  | { type: "extension"; message: ServerExtensionMessage }
  | { type: "permission-denied"; reason: string };

/**
 * The y-websocket protocol for one room, on top of y-protocols' sync and awareness (reused as
 * is: they are the protocol). No socket and no timer: frames go out through `send` while the
 * room is open, and `receive` takes frames in. Local changes made while closed stay in the
 * document and reach the server in the sync exchange of the next open (offline edits).
 *
 * Without a document (a presence-only room) the sync messages are ignored, and no step 1 is
 * sent, so the server never sends the document.
 */
export class RoomSync {
  private open = false;
  private synced = false;

  constructor(
    readonly doc: Y.Doc | null,
    readonly awareness: awarenessProtocol.Awareness,
    private readonly send: (frame: Uint8Array) => void,
  ) {
    doc?.on("update", this.onDocUpdate);
    awareness.on("update", this.onAwarenessUpdate);
  }

  get isSynced(): boolean {
    return this.synced;
  }

  /** The socket opened: ask for the document, and announce our state with a bumped clock. */
  opened(): void {
    this.open = true;
    this.synced = false;
    if (this.doc) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MessageType.Sync);
      syncProtocol.writeSyncStep1(encoder, this.doc);
      this.send(encoding.toUint8Array(encoder));
    }
    const state = this.awareness.getLocalState();
    // Setting the same state again raises its clock above the `null` the server broadcast when
    // the last socket closed, so every peer takes it (yjs/y-websocket#122); the update handler
    // sends it.
    if (state !== null) this.awareness.setLocalState(state);
  }

  /** The socket closed: nothing is sent until the next open. */
  closed(): void {
    this.open = false;
    this.synced = false;
  }

  /** One binary frame from the server; replies go out through `send`. */
  receive(frame: Uint8Array): SyncEvent | null {
    const decoder = decoding.createDecoder(frame);
    const type = decoding.readVarUint(decoder);
    switch (type) {
      case MessageType.Sync:
        return this.receiveSync(decoder);
      case MessageType.Awareness:
        awarenessProtocol.applyAwarenessUpdate(
          this.awareness,
          decoding.readVarUint8Array(decoder),
          this,
        );
        return null;
      case MessageType.QueryAwareness: {
        const encoder = encoding.createEncoder();
        encoding.writeVarUint(encoder, MessageType.Awareness);
        encoding.writeVarUint8Array(
          encoder,
          awarenessProtocol.encodeAwarenessUpdate(this.awareness, [
            ...this.awareness.getStates().keys(),
          ]),
        );
        this.send(encoding.toUint8Array(encoder));
        return null;
      }
      case MessageType.Auth: {
        const kind = decoding.readVarUint(decoder);
        if (kind !== AuthMessageType.PermissionDenied) return null;
        return { type: "permission-denied", reason: decoding.readVarString(decoder) };
      }
      case MessageType.Halo: {
        const message = readExtension(decoder);
        return message ? { type: "extension", message } : null;
      }
      default:
        return null; // a newer server's message type: ignored, as y-websocket does
    }
  }

  /** Remote awareness entries not in `keep` are dropped (after a reconnect's snapshot). */
  dropRemoteExcept(keep: ReadonlySet<number>): void {
    const stale = [...this.awareness.getStates().keys()].filter(
      (clientId) => clientId !== this.awareness.clientID && !keep.has(clientId),
    );
    if (stale.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, stale, this);
  }

  destroy(): void {
    this.doc?.off("update", this.onDocUpdate);
    this.awareness.off("update", this.onAwarenessUpdate);
    this.open = false;
  }

  private receiveSync(decoder: decoding.Decoder): SyncEvent | null {
    if (!this.doc) return null;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MessageType.Sync);
    const kind = syncProtocol.readSyncMessage(decoder, encoder, this.doc, this);
    // Step 1 from the server is answered with step 2: everything it lacks, offline edits too.
    if (encoding.length(encoder) > 1) this.send(encoding.toUint8Array(encoder));
    if (kind === syncProtocol.messageYjsSyncStep2 && !this.synced) {
      this.synced = true;
      return { type: "synced" };
    }
    return null;
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === this || !this.open) return; // the server's own updates are not echoed
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MessageType.Sync);
    syncProtocol.writeUpdate(encoder, update);
    this.send(encoding.toUint8Array(encoder));
  };

  private readonly onAwarenessUpdate = (change: {
    added: number[];
    updated: number[];
    removed: number[];
  }): void => {
    // Only our own entry is sent: the server owns every other one, and ignores relays anyway.
    // Whatever the origin: when the server says we are gone while we are not, y-protocols
    // raises our clock in `applyAwarenessUpdate`, and that answer must go out.
    if (!this.open) return;
    const mine = this.awareness.clientID;
    const changed = [...change.added, ...change.updated, ...change.removed];
    if (!changed.includes(mine)) return;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MessageType.Awareness);
    encoding.writeVarUint8Array(
      encoder,
      awarenessProtocol.encodeAwarenessUpdate(this.awareness, [mine]),
    );
    this.send(encoding.toUint8Array(encoder));
  };
}
