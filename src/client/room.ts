import { Awareness } from "y-protocols/awareness";
import * as Y from "yjs";
import type { ClientClock } from "./client-clock";
import { controlFrame } from "./client-frames";
import { Emitter } from "./emitter";
import { HaloRequestError } from "./halo-request-error";
import {
  type CloseInfo,
  type ConnectionSettings,
  type ConnectionStatus,
  RoomConnection,
  type WebSocketConstructor,
} from "./room-connection";
import { type PresenceState, RoomPresence } from "./room-presence";
import { RoomSync, type SyncEvent } from "./room-sync";
import { expiryOf } from "./token-expiry";
import type { TokenSource } from "./token-source";

/** What `client.room(name, options)` takes. */
export interface RoomOptions {
  /** The Yjs document to keep in sync. Without one the room is presence only. */
  doc?: Y.Doc;
  /** Enter at once with this state. Without it, a room with a `doc` enters with `{}` (as y-websocket does, so editor bindings can set fields) and one without stays out until `presence.enter()`. */
  presence?: PresenceState;
  /** An awareness instance to use (editor bindings that create their own). */
  awareness?: Awareness;
  /** Connect now (default true). */
  connect?: boolean;
}

export type RoomEvents = {
  status: (status: ConnectionStatus) => void;
  /** The document is in sync with the server (true), or the socket was lost (false). */
  synced: (synced: boolean) => void;
  /** Something went wrong that the room recovers from by itself (or, with status `disconnected`, not). */
  error: (error: Error) => void;
};

/** Settings the client hands every room. */
export interface RoomSettings extends ConnectionSettings {
  /** Refresh a token this long before its `exp` (at most a third of its remaining life). */
  tokenRefreshMarginMs: number;
}

/** @internal How the client builds a room's URL. */
export type UrlFor = (room: string, token: string | null) => string;

/**
 * One room: its document, its awareness (for editor bindings), its presence, and its
 * connection. Changes made while disconnected are kept and sent on reconnect.
 */
export class Room extends Emitter<RoomEvents> {
  readonly doc: Y.Doc | null;
  readonly awareness: Awareness;
  readonly presence: RoomPresence;
  private readonly sync: RoomSync;
  private readonly connection: RoomConnection;
  private refreshTimer: unknown = null;
  /** Snapshots applied when the socket opened; null once that connection's first one came. */
  private snapshotsAtOpen: number | null = null;
  private destroyed = false;
  /** Handshakes refused in a row, and what REST said when asked why. */
  private refusedInARow = 0;
  private refreshedForRefusal = false;
  private refusal: HaloRequestError | null = null;

  constructor(
    readonly name: string,
    options: RoomOptions,
    private readonly tokens: TokenSource,
    urlFor: UrlFor,
    WebSocketImpl: WebSocketConstructor,
    private readonly clock: ClientClock,
    private readonly settings: RoomSettings,
    private readonly onDestroy: (room: Room) => void,
    /** Asks REST about the room with this token (throws `HaloRequestError` when refused). */
    private readonly probe: (room: string, token: string | null) => Promise<unknown>,
  ) {
    super();
    this.doc = options.doc ?? null;
    this.awareness = options.awareness ?? new Awareness(this.doc ?? new Y.Doc());
    // y-protocols renews the local entry every 15 s and drops peers silent for 30 s. The server
    // is the authority on who left, and the renewal would wake a hibernating shard twice a
    // minute per client for nothing: liveness is the ping the platform answers by itself.
    stopAwarenessTimer(this.awareness);
    const initial = options.presence ?? (this.doc ? (this.awareness.getLocalState() ?? {}) : null);
    this.awareness.setLocalState(initial);

    this.sync = new RoomSync(this.doc, this.awareness, (frame) => this.connection.send(frame));
    this.presence = new RoomPresence(this.awareness, () =>
      this.connection.send(controlFrame({ type: "presence.resync" })),
    );
    this.connection = new RoomConnection(
      WebSocketImpl,
      {
        prepare: async (lastClose) => {
          this.refusedInARow = lastClose?.refused ? this.refusedInARow + 1 : 0;
          // A policy close (1008) is most often an expired token: fetch a new one first.
          let token =
            lastClose?.code === 1008 && this.tokens.refreshable
              ? await this.tokens.refresh()
              : await this.tokens.ensure();
          if (this.refusedInARow >= REFUSALS_BEFORE_ASKING_WHY) token = await this.askWhy(token);
          return urlFor(this.name, token);
        },
        shouldRetry: (close) => this.shouldRetry(close),
        opened: () => this.opened(),
        frame: (data) => this.frame(data),
        closed: (close) => this.closed(close),
        status: (status) => this.emit("status", status),
        error: (error) => this.emit("error", error),
      },
      clock,
      settings,
    );
    if (options.connect !== false) this.connection.start();
  }

  get status(): ConnectionStatus {
    return this.connection.status;
  }

  get synced(): boolean {
    return this.sync.isSynced;
  }

  /** Resolves once the document is in sync (at once for a presence-only room that is connected). */
  whenSynced(): Promise<void> {
    if (this.doc === null ? this.status === "connected" : this.synced) return Promise.resolve();
    return new Promise((resolve) => {
      const off =
        this.doc === null
          ? this.on("status", (status) => {
              if (status === "connected") {
                off();
                resolve();
              }
            })
          : this.on("synced", (synced) => {
              if (synced) {
                off();
                resolve();
              }
            });
    });
  }

  /** (Re)connects after `disconnect()`. */
  connect(): void {
    if (this.destroyed) throw new Error(`room ${this.name} was destroyed`);
    this.refusal = null;
    this.connection.start();
  }

  /** Closes the socket; the document and this client's state are kept for `connect()`. */
  disconnect(): void {
    this.connection.stop();
  }

  /** Skips a reconnect wait (e.g. the browser is back online). */
  retryNow(): void {
    this.connection.retryNow();
  }

  /** Leaves the room for good: presence left, socket closed, listeners removed. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.presence.leave(); // sent while the socket is still open: others see `left` at once
    this.connection.stop();
    this.sync.destroy();
    this.presence.dispose();
    this.removeAllListeners();
    this.onDestroy(this);
  }

  /**
   * The handshake keeps failing, and a WebSocket cannot tell why (a browser sees 1006 for a
   * 401 as for a network down). The same request over REST can: a refusal for good (bad token,
   * no right, bad name or region) stops the room with an error naming it; a 401 with
   * `getToken` gets one fresh token first. Anything else (unreachable, 5xx, 429) keeps trying.
   */
  private async askWhy(token: string | null): Promise<string | null> {
    try {
      await this.probe(this.name, token);
      return token;
    } catch (error) {
      if (!(error instanceof HaloRequestError) || !FOR_GOOD.has(error.status)) return token;
      if (error.status === 401 && this.tokens.refreshable && !this.refreshedForRefusal) {
        this.refreshedForRefusal = true;
        return this.tokens.refresh();
      }
      this.refusal = error;
      throw error;
    }
  }

  private shouldRetry(close: CloseInfo): boolean {
    if (this.refusal !== null) return false; // already reported as an error; status disconnected
    if (close.code === 1008 && !this.tokens.refreshable) {
      this.emit(
        "error",
        new Error(`room ${this.name}: refused (${close.reason}); a fresh token is needed`),
      );
      return false;
    }
    return true;
  }

  private opened(): void {
    this.refusedInARow = 0;
    this.refreshedForRefusal = false;
    this.snapshotsAtOpen = this.presence.snapshotsApplied;
    this.sync.opened();
    this.scheduleTokenRefresh();
  }

  private frame(data: Uint8Array): void {
    let event: SyncEvent | null;
    try {
      event = this.sync.receive(data);
    } catch (error) {
      this.emit(
        "error",
        new Error(`room ${this.name}: unreadable frame from the server: ${String(error)}`),
      );
      return;
    }
    if (event === null) return;
    switch (event.type) {
      case "synced":
        this.connection.healthy();
        this.emit("synced", true);
        return;
      case "permission-denied":
        this.emit("error", new Error(`room ${this.name}: permission denied: ${event.reason}`));
        return;
      case "extension":
        this.extension(event.message);
        return;
    }
  }

  private extension(message: Extract<SyncEvent, { type: "extension" }>["message"]): void {
    if (message.type === "auth.refreshed") {
      this.scheduleTokenRefresh();
      return;
    }
    this.presence.receive(message);
    if (this.doc === null && message.type === "presence.snapshot") this.connection.healthy();
    if (this.snapshotsAtOpen !== null && this.presence.snapshotsApplied > this.snapshotsAtOpen) {
      // The first snapshot after a reconnect: cursors of members that left meanwhile go.
      this.snapshotsAtOpen = null;
      const present = this.presence.members().filter((member) => member.status === "present");
      this.sync.dropRemoteExcept(new Set(present.map((member) => member.clientId)));
    }
  }

  private closed(_close: CloseInfo): void {
    const wasSynced = this.sync.isSynced;
    this.sync.closed();
    this.presence.disconnected();
    if (this.refreshTimer !== null) this.clock.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (wasSynced) this.emit("synced", false);
  }

  /** Fetches a new token ahead of `exp` and hands it to the open socket (`auth.refresh`). */
  private scheduleTokenRefresh(minDelayMs = 0): void {
    if (this.refreshTimer !== null) this.clock.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const token = this.tokens.current;
    if (token === null || !this.tokens.refreshable) return;
    const exp = expiryOf(token);
    if (exp === null) return;
    const remaining = exp * 1000 - this.clock.now();
    if (remaining <= 0) return; // the server closes it (1008); the reconnect fetches a new one
    const margin = Math.min(this.settings.tokenRefreshMarginMs, remaining / 3);
    this.refreshTimer = this.clock.setTimeout(
      () => {
        this.refreshTimer = null;
        this.tokens.refresh().then(
          (fresh) => {
            // The answer (`auth.refreshed`) schedules the next refresh.
            this.connection.send(controlFrame({ type: "auth.refresh", token: fresh }));
          },
          (error: unknown) => {
            this.emit(
              "error",
              new Error(`room ${this.name}: token refresh failed: ${String(error)}`),
            );
            // Try again before the server closes the socket; if it does, reconnecting refreshes.
            if (this.connection.status === "connected") this.scheduleTokenRefresh(1000);
          },
        );
      },
      Math.max(minDelayMs, remaining - margin),
    );
  }
}

/** How many refused handshakes in a row before asking REST why. */
const REFUSALS_BEFORE_ASKING_WHY = 2;
/** REST answers that mean the socket will be refused for good (not 429, not 5xx). */
const FOR_GOOD = new Set([400, 401, 403, 404]);

/** Stops y-protocols' 15-second renewal timer (see the constructor). */
function stopAwarenessTimer(awareness: Awareness): void {
  const timer = (awareness as unknown as { _checkInterval?: ReturnType<typeof setInterval> })
    ._checkInterval;
  if (timer !== undefined) clearInterval(timer);
}
