import type { z } from "zod";
import type {
  errorBodySchema,
  presenceResponseSchema,
  regionsResponseSchema,
} from "../http/api-schemas";
import { roomNameProblem, userIdProblem } from "../protocol/names";
import { type ClientClock, systemClock } from "./client-clock";
import { Emitter } from "./emitter";
import { HaloRequestError } from "./halo-request-error";
import { Room, type RoomOptions, type RoomSettings } from "./room";
import {
  type ConnectionStatus,
  DEFAULT_CONNECTION_SETTINGS,
  type WebSocketConstructor,
} from "./room-connection";
import { type GetToken, TokenSource } from "./token-source";

export type PresenceResponse = z.infer<typeof presenceResponseSchema>;
export type RegionsResponse = z.infer<typeof regionsResponseSchema>;

/** `GET /v1/rooms/:room/presence` parameters (see the API section of the README). */
export interface PresenceQuery {
  consistency?: "local" | "all";
  view?: "members" | "users";
  /** Counts only. */
  count?: boolean;
  userId?: string;
  memberRegion?: string;
  status?: "present" | "reconnecting";
  limit?: number;
  /** A previous page's `nextCursor`. */
  cursor?: string;
}

/** What `connect()` takes. Give `token`, or `getToken` to have tokens refreshed before expiry. */
export interface ConnectOptions {
  /** The service's base URL: `https://halo.example.com`, or `http://127.0.0.1:8787` locally. */
  url: string;
  /** A fixed JWT for every room. */
  token?: string;
  /** Asked for a room's token when it first connects, before the token expires, and after a policy close. */
  getToken?: GetToken;
  /** Pin a region (`?region=`, where the deployment allows it; development does). */
  region?: string;
  /** Anonymous development only: the userId to appear as (`?user=`). */
  user?: string;
  /** The WebSocket class; defaults to the global one (browsers, Node 22). On Node 20 pass `ws`. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect backoff: the first wait's ceiling and the longest wait (ms). Full jitter. */
  backoff?: Partial<RoomSettings["backoff"]>;
  /** Ping a socket silent this long (ms, 0 = never); answered by the platform, no shard woken. */
  pingIntervalMs?: number;
  /** Reconnect when nothing answers a ping within this (ms). */
  pongTimeoutMs?: number;
  /** Refresh tokens this long before `exp` (ms). */
  tokenRefreshMarginMs?: number;
  /** The fetch for REST calls (defaults to the global one). */
  fetch?: typeof fetch;
  /** @internal Time and randomness, for tests. */
  clock?: ClientClock;
}

export type ClientEvents = {
  /** The status of one of the client's rooms changed. */
  status: (room: Room, status: ConnectionStatus) => void;
};

/**
 * A connection to Halo: one socket per room (the room is the URL), rooms created with
 * `room(name)`, and the REST queries an app or an operator wants.
 */
export class HaloClient extends Emitter<ClientEvents> {
  private readonly rooms = new Map<string, Room>();
  private readonly settings: RoomSettings;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly clock: ClientClock;
  private readonly removeOnline: () => void;

  constructor(private readonly options: ConnectOptions) {
    super();
    if (options.token !== undefined && options.getToken !== undefined)
      throw new TypeError("connect(): give token or getToken, not both");
    const base = new URL(options.url); // throws on a malformed URL, before any socket
    // The server would refuse these at the handshake, which a browser reports only as 1006.
    const userProblem = options.user === undefined ? null : userIdProblem(options.user);
    if (userProblem) throw new TypeError(`connect(): ${userProblem}`);
    if (!["http:", "https:", "ws:", "wss:"].includes(base.protocol))
      throw new TypeError(`connect(): url must be http(s) or ws(s), not ${base.protocol}`);
    const WebSocketImpl =
      options.WebSocket ??
      (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket ??
      undefined;
    if (!WebSocketImpl)
      throw new TypeError(
        "connect(): no global WebSocket here; pass one (e.g. `ws`) as options.WebSocket",
      );
    this.WebSocketImpl = WebSocketImpl;
    this.clock = options.clock ?? systemClock;
    this.settings = {
      backoff: { ...DEFAULT_CONNECTION_SETTINGS.backoff, ...options.backoff },
      pingIntervalMs: options.pingIntervalMs ?? DEFAULT_CONNECTION_SETTINGS.pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs ?? DEFAULT_CONNECTION_SETTINGS.pongTimeoutMs,
      tokenRefreshMarginMs: options.tokenRefreshMarginMs ?? 30_000,
    };
    this.removeOnline = onBrowserOnline(() => {
      for (const room of this.rooms.values()) room.retryNow();
    });
  }

  /**
   * The room `name`, connecting unless `connect: false`. Asking again for a room already open
   * returns the same one (and throws if a different document is passed).
   */
  room(name: string, options: RoomOptions = {}): Room {
    const problem = roomNameProblem(name);
    if (problem) throw new TypeError(`room(): ${problem}`);
    const existing = this.rooms.get(name);
    if (existing) {
      if (options.doc !== undefined && options.doc !== existing.doc)
        throw new Error(`room ${name} is already open with another document`);
      return existing;
    }
    const tokens = new TokenSource(name, this.options.token, this.options.getToken);
    const room = new Room(
      name,
      options,
      tokens,
      (room, token) => this.socketUrl(room, token),
      this.WebSocketImpl,
      this.clock,
      this.settings,
      (gone) => this.rooms.delete(gone.name),
      (name, token) => this.getJson(roomPath(name), new URLSearchParams(), token),
    );
    room.on("status", (status) => this.emit("status", room, status));
    this.rooms.set(name, room);
    return room;
  }

  /** The rooms open now. */
  openRooms(): Room[] {
    return [...this.rooms.values()];
  }

  /** `GET /v1/rooms/:room/presence`: who is in a room, without joining it (one page). */
  async fetchPresence(room: string, query: PresenceQuery = {}): Promise<PresenceResponse> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === false) continue;
      params.set(key, value === true ? "1" : String(value));
    }
    return this.getJson(`${roomPath(room)}/presence`, params, await this.tokenFor(room));
  }

  /** `GET /v1/rooms/:room`: the room's summary; also how a refused socket learns why. */
  async fetchRoom(room: string): Promise<unknown> {
    return this.getJson(roomPath(room), new URLSearchParams(), await this.tokenFor(room));
  }

  /** `GET /v1/regions`: the region-membership table as the nearest directory sees it. */
  async fetchRegions(): Promise<RegionsResponse> {
    return this.getJson("/v1/regions", new URLSearchParams(), null); // names no room: no token
  }

  /** Leaves every room and closes every socket. */
  close(): void {
    for (const room of [...this.rooms.values()]) room.destroy();
    this.removeOnline();
    this.removeAllListeners();
  }

  private socketUrl(room: string, token: string | null): string {
    const url = new URL(`v1/rooms/${encodeURIComponent(room)}`, withSlash(this.options.url));
    url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
    // Browsers cannot set headers on a WebSocket, so the token rides in the query string.
    url.searchParams.set("presence", "events");
    this.addIdentity(url.searchParams, token);
    return url.toString();
  }

  private addIdentity(params: URLSearchParams, token: string | null, inQuery = true): void {
    if (token !== null && inQuery) params.set("token", token);
    if (this.options.region !== undefined) params.set("region", this.options.region);
    if (this.options.user !== undefined && token === null) params.set("user", this.options.user);
  }

  /** A token for a REST call about `room` (asked of `getToken` when that is how tokens come). */
  private tokenFor(room: string): Promise<string | null> {
    return new TokenSource(room, this.options.token, this.options.getToken).ensure();
  }

  private async getJson<T>(
    path: string,
    params: URLSearchParams,
    token: string | null,
  ): Promise<T> {
    const url = new URL(path.slice(1), withSlash(this.options.url));
    url.protocol =
      url.protocol === "wss:" ? "https:" : url.protocol === "ws:" ? "http:" : url.protocol;
    for (const [key, value] of params) url.searchParams.set(key, value);
    this.addIdentity(url.searchParams, token, false);
    const response = await (this.options.fetch ?? fetch)(url, {
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
    });
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new HaloRequestError(response.status, "invalid_response", "the answer is not JSON");
    }
    if (!response.ok) {
      const error = (body as { error?: Partial<HaloErrorBody> } | null)?.error ?? {};
      const retryAfter = Number(response.headers.get("retry-after"));
      throw new HaloRequestError(
        response.status,
        error.code ?? "http_error",
        error.message ?? response.statusText,
        {
          ...(error.field !== undefined ? { field: error.field } : {}),
          ...(error.limit !== undefined ? { limit: error.limit } : {}),
          ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterS: retryAfter } : {}),
        },
      );
    }
    return body as T;
  }
}

type HaloErrorBody = z.infer<typeof errorBodySchema>["error"];

/** Connects to Halo. Rooms open with `client.room(name, { doc, presence })`. */
export function connect(options: ConnectOptions): HaloClient {
  return new HaloClient(options);
}

function roomPath(room: string): string {
  return `/v1/rooms/${encodeURIComponent(room)}`;
}

function withSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

/** Calls `retry` when a browser reports it is back online; a no-op elsewhere. */
function onBrowserOnline(retry: () => void): () => void {
  const target = globalThis as {
    addEventListener?: (type: string, listener: () => void) => void;
    removeEventListener?: (type: string, listener: () => void) => void;
    document?: unknown;
  };
  if (target.document === undefined || typeof target.addEventListener !== "function")
    return () => {};
  target.addEventListener("online", retry);
  return () => target.removeEventListener?.("online", retry);
}
