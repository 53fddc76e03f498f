/**
 * When a shard tells its region's directory its load (connections, loaded rooms): at once if
 * it has not reported within `intervalMs`, else once the interval is over (a trailing report,
 * so the table never keeps a stale figure after the last change). Pure: time comes in.
 */
export class LoadReporter {
  #lastSentAt = Number.NEGATIVE_INFINITY;
  #pending = false;

  constructor(private readonly intervalMs: number) {}

  /** The load changed: true to send now; otherwise a report is owed at `nextDue()`. */
  changed(now: number): boolean {
    if (now - this.#lastSentAt >= this.intervalMs) {
      this.#lastSentAt = now;
      this.#pending = false;
      return true;
    }
    this.#pending = true;
    return false;
  }

  /** On the alarm: true when the owed report is due now. */
  due(now: number): boolean {
    if (!this.#pending || now - this.#lastSentAt < this.intervalMs) return false;
    this.#lastSentAt = now;
    this.#pending = false;
    return true;
  }

  /** When the owed report is due, or null when nothing is owed. */
  nextDue(): number | null {
    return this.#pending ? this.#lastSentAt + this.intervalMs : null;
  }
}
