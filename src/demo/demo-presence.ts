import type { MemberOf } from "../client/react";

/** A point in the cursor area as fractions of its size (0..1), so windows of any size agree. */
export type Cursor = { x: number; y: number };

/** What each demo page puts in its presence state. */
export type DemoPresence = { name: string; color: string; cursor: Cursor | null };

export type DemoMember = MemberOf<Partial<DemoPresence>>;

/** The name to show: the member's own, else what the server knows (stock clients set none). */
export function displayName(member: DemoMember): string {
  const own = member.state.name;
  return typeof own === "string" && own !== "" ? own : (member.name ?? member.userId);
}

export function displayColor(member: DemoMember): string {
  const own = member.state.color;
  return typeof own === "string" && /^#[0-9a-f]{6}$/i.test(own) ? own : "#6b7280";
}

/** The cursor of a member, if it holds a well-formed one (states come from other clients). */
export function cursorOf(member: DemoMember): Cursor | null {
  const cursor = member.state.cursor;
  if (cursor === null || typeof cursor !== "object") return null;
  const { x, y } = cursor;
  if (typeof x !== "number" || typeof y !== "number") return null;
  if (!Number.isFinite(x) || !Number.isFinite(y)) return null;
  return { x: clamp01(x), y: clamp01(y) };
}

export function clamp01(value: number): number {
  return Math.min(1, Math.max(0, value));
}
