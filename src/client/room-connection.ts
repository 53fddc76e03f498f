import { CloseCode } from "../protocol/close-codes";
import { PING_FRAME } from "../protocol/liveness";
import { type BackoffSettings, backoffDelay } from "./backoff";
import type { ClientClock } from "./client-clock";

/** A room's connection, as apps see it. */
export type ConnectionStatus =
  /** The first attempt is under way. */
  | "connecting"
  /** The socket is open. */
  | "connected"
  /** The socket was lost; waiting out the backoff or trying again. Local changes are kept. */
  | "reconnecting"
  /**
   * The server moved the room (a resize or a drained region) and closed with `moved`: the SDK
   * reconnects at once, without backoff, and presence is kept as it was meanwhile.
   */
  | "moved"
  /** Closed by the app, or refused for good (see the `error` event). */
  | "disconnected";

/** The part of the WebSocket interface the SDK uses: browsers' and `ws`'s both fit. */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string) => SocketLike;

/** The most a client waits before reconnecting after a `moved` close (ms). */
export const MOVED_JITTER_MS = 100;

export interface ConnectionSettings {
  backoff: BackoffSettings;
  /**
   * After this long without any frame from the server, send `ping` (0 turns it off). The
   * platform answers `pong` without waking a hibernating shard, so a quiet room stays asleep.
   */
  pingIntervalMs: number;
  /** No frame at all this long after a ping: the socket is dead; reconnect. */
  pongTimeoutMs: number;
}

export const DEFAULT_CONNECTION_SETTINGS: ConnectionSettings = {
  backoff: { initialMs: 250, maxMs: 30_000 },
  pingIntervalMs: 30_000,
  pongTimeoutMs: 10_000,
};

/** How a socket ended. `local` closes are the SDK's own (a dead socket, a stop). */
export interface CloseInfo {
  code: number;
  reason: string;
  /** The socket closed before it ever opened: the handshake failed, and a browser cannot say why. */
  refused?: boolean;
}

/** What the connection asks of the room it serves. */
export interface ConnectionHooks {
  /** The URL for the next attempt (a fresh token may go into it); throwing counts as a failed attempt. */
  prepare(lastClose: CloseInfo | null): Promise<string>;
  /** Whether to try again after this close (false: stop, status `disconnected`). */
  shouldRetry(close: CloseInfo): boolean;
  opened(): void;
  frame(data: Uint8Array): void;
  closed(close: CloseInfo): void;
  status(status: ConnectionStatus): void;
  error(error: Error): void;
}

/** Closes the SDK itself uses (4000–4999 is the application range of RFC 6455). */
export const LocalClose = {
  /** The app called `disconnect()`. */
  Stopped: { code: 1000, reason: "closed by the client" },
  /** No frame came back after a ping. */
  Unresponsive: { code: 4000, reason: "no answer to ping" },
  /** `prepare` failed (e.g. getToken threw). */
  PrepareFailed: { code: 4001, reason: "could not prepare the connection" },
} as const;

/**
 * One room's socket lifecycle: connect, reconnect with backoff and full jitter, and a liveness
 * check that only pings a socket that has been silent (so an active room pings never). No
 * protocol here: frames pass through to the hooks. Time comes from `clock`.
 */
export class RoomConnection {
  private socket: SocketLike | null = null;
  private current: ConnectionStatus = "disconnected";
  private running = false;
  private attempt = 0;
  private everOpened = false;
  private retryTimer: unknown = null;
  private livenessTimer: unknown = null;
  private lastFrameAt = 0;
  private pingSentAt: number | null = null;
  /** Bumped on every attempt, so callbacks of an abandoned attempt do nothing. */
  private generation = 0;

  constructor(
    private readonly WebSocketImpl: WebSocketConstructor,
    private readonly hooks: ConnectionHooks,
    private readonly clock: ClientClock,
    private readonly settings: ConnectionSettings,
  ) {}

  get status(): ConnectionStatus {
    return this.current;
  }

  /** Starts connecting (no-op while running). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.setStatus("connecting"); // the app asked: "reconnecting" is for losses
    void this.connect(null);
  }

  /** Closes the socket and stops reconnecting. */
  stop(): void {
    this.running = false;
    this.generation++;
    this.clearTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      detach(socket);
      socket.close(LocalClose.Stopped.code, LocalClose.Stopped.reason);
      this.hooks.closed({ ...LocalClose.Stopped });
    }
    this.setStatus("disconnected");
  }

  /** Skips the rest of a backoff wait (the browser came back online, say). */
  retryNow(): void {
    if (!this.running || this.socket !== null || this.retryTimer === null) return;
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    void this.connect(null);
  }

  /** The connection did useful work (it synced): the next loss starts the backoff afresh. */
  healthy(): void {
    this.attempt = 0;
  }

  /** Sends on the open socket; false when there is none (the caller keeps its state). */
  send(data: Uint8Array | string): boolean {
    const socket = this.socket;
    if (socket === null || this.current !== "connected") return false;
    socket.send(data);
    return true;
  }

  private async connect(lastClose: CloseInfo | null): Promise<void> {
    const generation = ++this.generation;
    let url: string;
    try {
      url = await this.hooks.prepare(lastClose);
    } catch (error) {
      if (generation !== this.generation) return;
      this.hooks.error(error instanceof Error ? error : new Error(String(error)));
      this.lost({ ...LocalClose.PrepareFailed });
      return;
    }
    if (generation !== this.generation || !this.running) return;
    const socket = new this.WebSocketImpl(url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      opened = true;
      this.everOpened = true;
      this.lastFrameAt = this.clock.now();
      this.setStatus("connected");
      this.hooks.opened();
      this.armLiveness();
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      this.lastFrameAt = this.clock.now();
      this.pingSentAt = null; // any frame proves the socket is alive
      const data = event.data;
      if (typeof data === "string") return; // `pong`: liveness only
      const bytes = toBytes(data);
      if (bytes) this.hooks.frame(bytes);
    };
    let opened = false;
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      detach(socket);
      this.lost({ code: event.code, reason: event.reason, ...(opened ? {} : { refused: true }) });
    };
    socket.onerror = () => {
      // A close event follows every error; that is where the attempt is judged.
    };
  }

  /** The socket (or the attempt) is gone: tell the room, then retry after a jittered wait. */
  private lost(close: CloseInfo): void {
    this.clearTimers();
    this.hooks.closed(close);
    if (!this.running) return;
    if (!this.hooks.shouldRetry(close)) {
      this.running = false;
      this.setStatus("disconnected");
      return;
    }
    // A move is the server's plan, not a failure: back at once (a little jitter spreads a
    // room's clients), and the backoff is not raised.
    const moved = close.code === CloseCode.Moved;
    this.setStatus(moved ? "moved" : this.everOpened ? "reconnecting" : "connecting");
    const wait = moved
      ? Math.floor(this.clock.random() * MOVED_JITTER_MS)
      : backoffDelay(this.attempt++, this.clock.random(), this.settings.backoff);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      void this.connect(close);
    }, wait);
  }

  /** Checks the socket's liveness only when it has been silent for `pingIntervalMs`. */
  private armLiveness(): void {
    const { pingIntervalMs, pongTimeoutMs } = this.settings;
    if (pingIntervalMs <= 0) return;
    const now = this.clock.now();
    const due =
      this.pingSentAt !== null
        ? this.pingSentAt + pongTimeoutMs
        : this.lastFrameAt + pingIntervalMs;
    this.livenessTimer = this.clock.setTimeout(
      () => {
        this.livenessTimer = null;
        const socket = this.socket;
        if (socket === null || this.current !== "connected") return;
        const at = this.clock.now();
        if (this.pingSentAt !== null && at >= this.pingSentAt + pongTimeoutMs) {
          // Dead without a close frame (a sleeping laptop, a dropped route): give up on it now
          // rather than wait for TCP to notice.
          this.socket = null;
          detach(socket);
          socket.close(LocalClose.Unresponsive.code, LocalClose.Unresponsive.reason);
          this.lost({ ...LocalClose.Unresponsive });
          return;
        }
        if (this.pingSentAt === null && at >= this.lastFrameAt + pingIntervalMs) {
          this.pingSentAt = at;
          socket.send(PING_FRAME);
        }
        this.armLiveness();
      },
      Math.max(0, due - now),
    );
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    if (this.livenessTimer !== null) this.clock.clearTimeout(this.livenessTimer);
    this.retryTimer = null;
    this.livenessTimer = null;
    this.pingSentAt = null;
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.current) return;
    this.current = status;
    this.hooks.status(status);
  }
}

function detach(socket: SocketLike): void {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
  // An error after detaching (closing a socket still connecting reports one) must not throw.
  socket.onerror = () => {};
}

function toBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data))
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}
