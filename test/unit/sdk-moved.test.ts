import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay } from "../../src/client/backoff";
import { systemClock } from "../../src/client/client-clock";
import {
  type CloseInfo,
  type ConnectionSettings,
  type ConnectionStatus,
  MOVED_JITTER_MS,
  RoomConnection,
  type SocketLike,
} from "../../src/client/room-connection";
import { CloseCode } from "../../src/protocol/close-codes";

/**
 * The connection's reaction to a `moved` close (4100) against an ordinary drop, on vitest's
 * fake timers: `moved` comes back within MOVED_JITTER_MS and leaves the backoff where it was.
 */

const T0 = 1_700_000_000_000;

// Liveness off: only reconnect timers run. A long first backoff so a drop and a move differ.
const SETTINGS: ConnectionSettings = {
  backoff: { initialMs: 1_000, maxMs: 30_000 },
  pingIntervalMs: 0,
  pongTimeoutMs: 0,
};

/** A socket the test opens and closes by hand, as the server would. */
class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  binaryType = "blob";
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly createdAt = Date.now();

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  send(): void {}

  close(): void {
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** The server closes the socket with `code`. */
  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** Every draw is 0.999: the longest wait either path can give, so bounds are tight. */
const HIGH = 0.999;

function connection() {
  const statuses: ConnectionStatus[] = [];
  const prepared: Array<CloseInfo | null> = [];
  const conn = new RoomConnection(
    FakeSocket,
    {
      prepare: async (lastClose) => {
        prepared.push(lastClose);
        return "wss://halo.test/v1/rooms/r";
      },
      shouldRetry: () => true,
      opened: () => {},
      frame: () => {},
      closed: () => {},
      status: (status) => statuses.push(status),
      error: () => {},
    },
    { ...systemClock, random: () => HIGH },
    SETTINGS,
  );
  return { conn, statuses, prepared };
}

const run = (ms: number) => vi.advanceTimersByTimeAsync(ms);

function last(): FakeSocket {
  const socket = FakeSocket.all.at(-1);
  if (!socket) throw new Error("no socket yet");
  return socket;
}

/** Time from a close to the next socket, in fake ms (fails if none comes within `limit`). */
async function reconnectDelay(close: () => void, limit: number): Promise<number> {
  const before = FakeSocket.all.length;
  const closedAt = Date.now();
  close();
  for (let waited = 0; waited <= limit; waited++) {
    if (FakeSocket.all.length > before) return last().createdAt - closedAt;
    await run(1);
  }
  throw new Error(`no reconnect within ${limit} ms`);
}

let started: RoomConnection[] = [];

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  FakeSocket.all = [];
  started = [];
});

afterEach(() => {
  for (const conn of started) conn.stop();
  vi.useRealTimers();
});

async function connected() {
  const made = connection();
  started.push(made.conn);
  made.conn.start();
  await run(0);
  last().open();
  expect(made.conn.status).toBe("connected");
  return made;
}

describe("RoomConnection: a moved close", () => {
  it("shows `moved`, and reconnects within MOVED_JITTER_MS with the close passed on", async () => {
    const { conn, statuses, prepared } = await connected();
    expect(MOVED_JITTER_MS).toBe(100);
    expect(CloseCode.Moved).toBe(4100);
    const socket = last();
    const delay = await reconnectDelay(
      () => socket.serverClose(CloseCode.Moved, "moved: the room moved to another shard"),
      MOVED_JITTER_MS,
    );
    expect(delay).toBeLessThan(MOVED_JITTER_MS);
    // The draw of 0.999 gives the longest jittered wait: floor(0.999 * 100).
    expect(delay).toBe(99);
    expect(conn.status).toBe("moved");
    expect(prepared.at(-1)).toEqual({
      code: CloseCode.Moved,
      reason: "moved: the room moved to another shard",
    });
    last().open();
    expect(statuses).toEqual(["connecting", "connected", "moved", "connected"]);
  });

  it("an ordinary drop shows `reconnecting` and waits out the backoff instead", async () => {
    const { conn, statuses } = await connected();
    const socket = last();
    const before = FakeSocket.all.length;
    const closedAt = Date.now();
    socket.serverClose(1006);
    expect(conn.status).toBe("reconnecting");
    await run(MOVED_JITTER_MS);
    // Nothing yet where a move would already be back.
    expect(FakeSocket.all.length).toBe(before);
    await run(2_000);
    expect(FakeSocket.all.length).toBe(before + 1);
    expect(last().createdAt - closedAt).toBe(backoffDelay(0, HIGH, SETTINGS.backoff));
    expect(backoffDelay(0, HIGH, SETTINGS.backoff)).toBe(999);
    expect(statuses).toEqual(["connecting", "connected", "reconnecting"]);
  });

  it("a move does not raise the backoff attempt: the next drop waits as if it had not happened", async () => {
    await connected();
    for (let i = 0; i < 3; i++) {
      const socket = last();
      expect(await reconnectDelay(() => socket.serverClose(CloseCode.Moved), 100)).toBe(99);
      last().open();
    }
    const first = last();
    expect(await reconnectDelay(() => first.serverClose(1006), 5_000)).toBe(
      backoffDelay(0, HIGH, SETTINGS.backoff),
    );
    last().open();
    // A drop raised the attempt; a move between two drops neither raises nor resets it.
    const moving = last();
    expect(await reconnectDelay(() => moving.serverClose(CloseCode.Moved), 100)).toBe(99);
    last().open();
    const second = last();
    expect(await reconnectDelay(() => second.serverClose(1006), 5_000)).toBe(
      backoffDelay(1, HIGH, SETTINGS.backoff),
    );
    expect(backoffDelay(1, HIGH, SETTINGS.backoff)).toBe(1_998);
  });

  it("a move of a socket that never opened still reconnects at once", async () => {
    const { conn } = connection();
    started.push(conn);
    conn.start();
    await run(0);
    const socket = last();
    expect(await reconnectDelay(() => socket.serverClose(CloseCode.Moved), 100)).toBe(99);
    expect(conn.status).toBe("moved");
  });
});

describe("RoomConnection: a local failure is not a move", () => {
  it("a getToken failure backs off and is not shown as `moved`", async () => {
    let calls = 0;
    const statuses: string[] = [];
    const conn = new RoomConnection(
      FakeSocket,
      {
        prepare: async () => {
          calls++;
          throw new Error("getToken failed");
        },
        shouldRetry: () => true,
        opened() {},
        frame() {},
        closed() {},
        status: (status) => statuses.push(status),
        error() {},
      },
      { ...systemClock, random: () => 0.999 },
      SETTINGS,
    );
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses).not.toContain("moved");
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toBe(1); // the first backoff is about initialMs, not MOVED_JITTER_MS
    conn.stop();
  });
});
