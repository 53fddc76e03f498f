/**
 * What the page reads from its URL (`?region=`, `?name=`, `?room=`), with the defaults a
 * newcomer gets, and the small identity helpers (a friendly name, a color, a userId).
 */
export const REGIONS = ["wnam", "weur", "apac"] as const;
export type Region = (typeof REGIONS)[number];

export interface PageParams {
  region: Region;
  name: string;
  room: string;
}

const ADJECTIVES = "Brave Calm Clever Eager Gentle Happy Lucky Quiet Swift Witty".split(" ");
const ANIMALS = "Otter Falcon Panda Lynx Heron Koala Marten Puffin Fox Wren".split(" ");
const COLORS = "#e4572e #2e86ab #7b2cbf #17a398 #f29e4c #d62f7d #4c6ef5 #2b9348".split(" ");

export function readParams(search: string, random: () => number = Math.random): PageParams {
  const params = new URLSearchParams(search);
  const region = params.get("region");
  const name = params.get("name")?.trim();
  const room = params.get("room")?.trim();
  return {
    region: isRegion(region) ? region : "wnam",
    name: name ? name.slice(0, 40) : friendlyName(random),
    room: room || "demo",
  };
}

export function isRegion(value: string | null): value is Region {
  return (REGIONS as readonly string[]).includes(value ?? "");
}

export function friendlyName(random: () => number = Math.random): string {
  const pick = (words: string[]) => words[Math.floor(random() * words.length)] ?? words[0];
  return `${pick(ADJECTIVES)} ${pick(ANIMALS)}`;
}

/** A stable color per name, so a member keeps its color across reloads and regions. */
export function colorFor(name: string): string {
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) >>> 0;
  return COLORS[hash % COLORS.length] ?? "#2e86ab";
}

/**
 * The anonymous development userId for a display name: the server accepts only
 * `A-Z a-z 0-9 . _ ~ : @ -` there, so "Brave Otter" becomes "Brave-Otter".
 */
export function userIdFor(name: string): string {
  const id = name.replace(/[^A-Za-z0-9._~:@-]+/g, "-").replace(/^-+|-+$/g, "");
  return (id || "guest").slice(0, 64);
}

/** The page's URL with its parameters replaced (kept in the address bar for sharing). */
export function urlWith(href: string, changes: Partial<PageParams>): string {
  const url = new URL(href);
  for (const [key, value] of Object.entries(changes)) url.searchParams.set(key, String(value));
  return url.toString();
}
