/**
 * Virtual time: a queue of callbacks ordered by due time, then by scheduling order (so equal
 * times run in a fixed order and a run replays exactly). Nothing here reads a real clock.
 */
export class Scheduler {
  #now = 0;
  #seq = 0;
  #heap: Task[] = [];

  get now(): number {
    return this.#now;
  }

  get pending(): number {
    return this.#heap.length;
  }

  at(time: number, run: () => void): void {
    push(this.#heap, { at: Math.max(time, this.#now), seq: this.#seq++, run });
  }

  after(delayMs: number, run: () => void): void {
    this.at(this.#now + delayMs, run);
  }

  /** Runs every task due up to `time`, then leaves the clock at `time`. */
  runUntil(time: number): void {
    for (let task = peek(this.#heap); task && task.at <= time; task = peek(this.#heap)) {
      pop(this.#heap);
      this.#now = task.at;
      task.run();
    }
    this.#now = Math.max(this.#now, time);
  }

  /**
   * Runs until `done()` holds (checked after each task) or `limit` is reached; returns the time
   * it first held, or undefined.
   */
  runUntilTrue(done: () => boolean, limit: number): number | undefined {
    if (done()) return this.#now;
    for (let task = peek(this.#heap); task && task.at <= limit; task = peek(this.#heap)) {
      pop(this.#heap);
      this.#now = task.at;
      task.run();
      if (done()) return this.#now;
    }
    this.#now = Math.max(this.#now, limit);
    return undefined;
  }
}

interface Task {
  at: number;
  seq: number;
  run: () => void;
}

function before(a: Task, b: Task): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function peek(heap: Task[]): Task | undefined {
  return heap[0];
}

function push(heap: Task[], task: Task): void {
  heap.push(task);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i] as Task, heap[parent] as Task)) break;
    [heap[i], heap[parent]] = [heap[parent] as Task, heap[i] as Task];
    i = parent;
  }
}

function pop(heap: Task[]): Task | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length > 0 && last) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l] as Task, heap[m] as Task)) m = l;
      if (r < heap.length && before(heap[r] as Task, heap[m] as Task)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m] as Task, heap[i] as Task];
      i = m;
    }
  }
  return top;
}
