import { type PointerEvent as ReactPointerEvent, useEffect, useRef } from "react";
import { useOthers, usePresence } from "../client/react";
import {
  type Cursor,
  clamp01,
  cursorOf,
  type DemoMember,
  type DemoPresence,
  displayColor,
  displayName,
} from "./demo-presence";

/** At most this many cursor updates a second leave the page (one per animation frame at most). */
const MIN_INTERVAL_MS = 50;

/** The shared canvas: this page's pointer goes out as its cursor; everyone else's is drawn. */
export function CursorArea() {
  const others = useOthers<Partial<DemoPresence>>();
  const [, update] = usePresence<DemoPresence>();
  const area = useRef<HTMLDivElement>(null);
  const sender = useRef<CursorSender | null>(null);

  useEffect(() => {
    const current = new CursorSender((cursor) => update({ cursor }));
    sender.current = current;
    return () => {
      current.dispose();
      sender.current = null;
    };
  }, [update]);

  const onPointerMove = (event: ReactPointerEvent<HTMLDivElement>) => {
    const rect = area.current?.getBoundingClientRect();
    if (!rect || rect.width === 0 || rect.height === 0) return;
    sender.current?.set({
      x: clamp01((event.clientX - rect.left) / rect.width),
      y: clamp01((event.clientY - rect.top) / rect.height),
    });
  };

  return (
    <div
      className="cursor-area"
      data-testid="cursor-area"
      ref={area}
      onPointerMove={onPointerMove}
      onPointerLeave={() => sender.current?.set(null)}
    >
      <p className="cursor-hint">Move your pointer here: everyone in the room sees it.</p>
      {others.map((member) => (
        <RemoteCursor key={member.clientId} member={member} />
      ))}
    </div>
  );
}

function RemoteCursor({ member }: { member: DemoMember }) {
  const cursor = cursorOf(member);
  if (cursor === null) return null;
  const color = displayColor(member);
  return (
    <div
      className="cursor"
      data-testid={`cursor-${member.clientId}`}
      data-name={displayName(member)}
      data-x={cursor.x.toFixed(3)}
      data-y={cursor.y.toFixed(3)}
      style={{ left: `${cursor.x * 100}%`, top: `${cursor.y * 100}%` }}
    >
      <svg width="18" height="18" viewBox="0 0 18 18" aria-hidden="true">
        <path d="M1 1 L1 15 L5 11 L8 17 L10.5 16 L7.5 10 L13 10 Z" fill={color} stroke="#fff" />
      </svg>
      <span className="cursor-label" style={{ background: color }}>
        {displayName(member)} · {member.region}
      </span>
    </div>
  );
}

/**
 * Sends the latest pointer position at most once per animation frame and once per
 * MIN_INTERVAL_MS: moves in between only replace the pending position.
 */
class CursorSender {
  private pending: Cursor | null | undefined = undefined;
  private frame: number | null = null;
  private lastSentAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly send: (cursor: Cursor | null) => void) {}

  set(cursor: Cursor | null): void {
    this.pending = cursor;
    if (this.frame === null) this.frame = requestAnimationFrame(this.tick);
  }

  dispose(): void {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
  }

  private readonly tick = (now: number) => {
    this.frame = null;
    if (this.pending === undefined) return;
    if (now - this.lastSentAt < MIN_INTERVAL_MS) {
      this.frame = requestAnimationFrame(this.tick);
      return;
    }
    this.lastSentAt = now;
    const cursor = this.pending;
    this.pending = undefined;
    this.send(cursor);
  };
}
