/**
 * One timer per room for the end of its coalescing window (src/core/fanout-batch.ts). Windows
 * are milliseconds long, below the alarm's grain, so they are plain timers; a pending timer
 * keeps the object awake, which a window's few milliseconds may. What a timer would have sent
 * is never lost to an eviction: the changes are in memory and in the senders' documents, and
 * an unloaded room writes its batch first (`RoomReplica.unload`).
 */
export class FanoutTimers {
  private readonly timers = new Map<
    string,
    { at: number; handle: ReturnType<typeof setTimeout> }
  >();

  /** Calls `fire(room)` at `at` (Unix ms), unless a timer for the room fires no later already. */
  schedule(room: string, at: number, fire: (room: string) => void): void {
    const pending = this.timers.get(room);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.handle);
    const handle = setTimeout(
      () => {
        this.timers.delete(room);
        fire(room);
      },
      Math.max(0, at - Date.now()),
    );
    this.timers.set(room, { at, handle });
  }
}
