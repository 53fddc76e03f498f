import * as Y from "yjs";

type DecodedUpdate = ReturnType<typeof Y.decodeUpdate>;
type StructId = { client: number; clock: number };

/**
 * Finds what a client's update needs that neither the document nor the update itself holds:
 * a gap in a client's clock range, an origin, right origin or parent item, or a deleted range.
 * Returns a description of the first such dependency, or null when the update is complete.
 *
 * Yjs keeps such an update "pending" and merges the pending structs into what it encodes
 * later, and with hostile clocks that encoding stops matching what clients hold. A stock
 * client never sends one: its sync step 2 is computed against the server's state vector, and
 * every later update builds on what it already sent. So the room refuses it (and the client
 * resyncs), rather than keep content it cannot place. `update` must already be diffed
 * against the document (`Y.diffUpdate`), so every struct starts at or above its state.
 */
export function missingDependency(doc: Y.Doc, update: DecodedUpdate): string | null {
  const state = (client: number) => Y.getState(doc.store, client);
  // Where each client's clock range ends once the update is applied.
  const available = new Map<number, number>();
  const byClient = new Map<number, Array<DecodedUpdate["structs"][number]>>();
  for (const struct of update.structs) {
    if (struct instanceof Y.Skip) return `a gap in client ${struct.id.client}'s clocks`;
    const list = byClient.get(struct.id.client);
    if (list) list.push(struct);
    else byClient.set(struct.id.client, [struct]);
  }
  for (const [client, structs] of byClient) {
    structs.sort((a, b) => a.id.clock - b.id.clock);
    let next = state(client);
    for (const struct of structs) {
      if (struct.id.clock !== next)
        return `client ${client}'s clock ${struct.id.clock} where ${next} comes next`;
      next += struct.length;
    }
    available.set(client, next);
  }
  const known = (id: StructId | null): boolean =>
    id === null || id.clock < (available.get(id.client) ?? state(id.client));
  for (const struct of update.structs) {
    if (!(struct instanceof Y.Item)) continue;
    if (!known(struct.origin)) return `origin ${describe(struct.origin)}`;
    if (!known(struct.rightOrigin)) return `right origin ${describe(struct.rightOrigin)}`;
    const parent = struct.parent as unknown;
    if (isId(parent) && !known(parent)) return `parent ${describe(parent)}`;
  }
  for (const [client, ranges] of update.ds.clients) {
    const end = available.get(client) ?? state(client);
    for (const range of ranges) {
      if (range.clock + range.len > end)
        return `a deletion of ${client}:${range.clock}+${range.len} beyond ${end}`;
    }
  }
  return null;
}

function isId(value: unknown): value is StructId {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as StructId).client === "number" &&
    typeof (value as StructId).clock === "number"
  );
}

function describe(id: StructId | null): string {
  return id === null ? "none" : `${id.client}:${id.clock}`;
}

/**
 * Finds an item whose left and right origins sit in different places (another shared type, or
 * another key of a map). Yjs takes the place from one of them when it integrates the item and
 * from the other when it decodes the document's own encoding, so such an item would make the
 * room's stored document differ from what its clients hold. No Yjs client produces one: both
 * origins are neighbours in the same sequence. Returns a description, or null.
 */
export function misplacedItem(doc: Y.Doc, update: DecodedUpdate): string | null {
  const inUpdate = new Map<number, Array<DecodedUpdate["structs"][number]>>();
  for (const struct of update.structs) {
    const list = inUpdate.get(struct.id.client);
    if (list) list.push(struct);
    else inUpdate.set(struct.id.client, [struct]);
  }
  const structAt = (id: StructId) =>
    inUpdate
      .get(id.client)
      ?.find((s) => s.id.clock <= id.clock && id.clock < s.id.clock + s.length);
  const resolving = new Set<DecodedUpdate["structs"][number]>();

  /** Where the struct holding `id` lives ("parent|key"), or null when it cannot be told (deleted, collected). */
  const placeOf = (id: StructId): string | null => {
    const pending = structAt(id);
    if (pending instanceof Y.Item) return placeOfUpdateItem(pending);
    if (pending !== undefined) return null;
    if (id.clock >= Y.getState(doc.store, id.client)) return null;
    const stored = Y.getItem(doc.store, Y.createID(id.client, id.clock));
    if (!(stored instanceof Y.Item) || stored.parent === null) return null;
    return `${typeKey(stored.parent as Y.AbstractType<unknown>)}|${stored.parentSub ?? ""}`;
  };
  const placeOfUpdateItem = (item: Y.Item): string | null => {
    const parent = item.parent as unknown;
    if (typeof parent === "string") return `root:${parent}|${item.parentSub ?? ""}`;
    if (isId(parent)) return `item:${parent.client}:${parent.clock}|${item.parentSub ?? ""}`;
    if (resolving.has(item)) return null; // a cycle of origins: Yjs will not place it either
    resolving.add(item);
    const from = item.origin ?? item.rightOrigin;
    const place = from === null ? null : placeOf(from);
    resolving.delete(item);
    return place;
  };

  const parentIdOf = (item: Y.Item): StructId | null => {
    const match = placeOfUpdateItem(item)?.match(/^item:(\d+):(\d+)\|/);
    return match ? { client: Number(match[1]), clock: Number(match[2]) } : null;
  };
  for (const struct of update.structs) {
    if (!(struct instanceof Y.Item)) continue;
    // A type inside itself: every client that renders the document would recurse forever.
    const seen = new Set<string>();
    for (let up = parentIdOf(struct); up !== null; ) {
      const { client, clock } = up;
      if (
        client === struct.id.client &&
        clock >= struct.id.clock &&
        clock < struct.id.clock + struct.length
      )
        return `item ${describe(struct.id)} is placed inside itself`;
      if (seen.has(`${client}:${clock}`)) break;
      seen.add(`${client}:${clock}`);
      const next = structAt(up);
      up = next instanceof Y.Item ? parentIdOf(next) : null;
    }
  }
  for (const struct of update.structs) {
    if (!(struct instanceof Y.Item) || struct.origin === null || struct.rightOrigin === null)
      continue;
    const left = placeOf(struct.origin);
    const right = placeOf(struct.rightOrigin);
    if (left !== null && right !== null && left !== right)
      return `item ${describe(struct.id)} between ${describe(struct.origin)} and ${describe(struct.rightOrigin)}, which are in different places`;
  }
  return null;
}

function typeKey(type: Y.AbstractType<unknown>): string {
  const item = type._item;
  return item === null
    ? `root:${Y.findRootTypeKey(type)}`
    : `item:${item.id.client}:${item.id.clock}`;
}

/**
 * Finds a split that would fall between the two halves of a surrogate pair in a stored or new
 * string: an item's left origin (a split after it), its right origin (a split before it), or
 * either end of a deleted range. Yjs splits the string there, each half becomes a lone
 * surrogate, and the encoder writes each as U+FFFD, so the room's document would no longer
 * match what it sent. A client that edits text never splits a character. Returns a description, or null.
 */
export function splitCharacter(doc: Y.Doc, update: DecodedUpdate): string | null {
  const newStructs = update.structs;
  const textAround = (client: number, clock: number): { str: string; at: number } | null => {
    const pending = newStructs.find(
      (s) => s.id.client === client && s.id.clock < clock && clock < s.id.clock + s.length,
    );
    const item =
      pending ??
      (clock > 0 && clock < Y.getState(doc.store, client)
        ? Y.getItem(doc.store, Y.createID(client, clock))
        : undefined);
    if (!(item instanceof Y.Item)) return null;
    const content = item.content as { str?: unknown };
    if (typeof content.str !== "string") return null;
    return { str: content.str, at: clock - item.id.clock };
  };
  const splitsPair = (client: number, clock: number): boolean => {
    const around = textAround(client, clock);
    if (around === null || around.at <= 0 || around.at >= around.str.length) return false;
    const before = around.str.charCodeAt(around.at - 1);
    const after = around.str.charCodeAt(around.at);
    return before >= 0xd800 && before <= 0xdbff && after >= 0xdc00 && after <= 0xdfff;
  };
  for (const struct of newStructs) {
    if (!(struct instanceof Y.Item)) continue;
    if (struct.origin && splitsPair(struct.origin.client, struct.origin.clock + 1))
      return `item ${describe(struct.id)} is placed inside a character (after ${describe(struct.origin)})`;
    if (struct.rightOrigin && splitsPair(struct.rightOrigin.client, struct.rightOrigin.clock))
      return `item ${describe(struct.id)} is placed inside a character (before ${describe(struct.rightOrigin)})`;
  }
  for (const [client, ranges] of update.ds.clients) {
    for (const range of ranges) {
      if (splitsPair(client, range.clock) || splitsPair(client, range.clock + range.len))
        return `a deletion of ${client}:${range.clock}+${range.len} cuts a character in half`;
    }
  }
  return null;
}

/** How far `crossedOrigins` walks from a left origin looking for the right one. */
const MAX_ORIGIN_WALK = 100_000;

/**
 * Finds an item whose left origin does not come before its right origin in the sequence they
 * share. When Yjs made the item they were neighbours, and items are only ever inserted
 * between neighbours, never reordered, so in a real update the right origin is always found
 * by walking right from the left one. Yjs integrates a crossed pair somewhere, but re-encodes
 * the document differently, so the room's stored copy would differ from its clients'.
 */
export function crossedOrigins(doc: Y.Doc, update: DecodedUpdate): string | null {
  const stored = (id: StructId): Y.Item | null => {
    if (id.clock >= Y.getState(doc.store, id.client)) return null;
    const item = Y.getItem(doc.store, Y.createID(id.client, id.clock));
    return item instanceof Y.Item ? item : null;
  };
  for (const struct of update.structs) {
    if (!(struct instanceof Y.Item) || struct.origin === null || struct.rightOrigin === null)
      continue;
    const left = stored(struct.origin);
    const right = stored(struct.rightOrigin);
    if (left === null || right === null) continue; // in the update itself: placed as Yjs places them
    const problem = `item ${describe(struct.id)} has its left origin ${describe(struct.origin)} after its right origin ${describe(struct.rightOrigin)}`;
    if (left === right) {
      if (struct.origin.clock >= struct.rightOrigin.clock) return problem;
      continue;
    }
    let at: Y.Item | null = left.right;
    let steps = 0;
    while (at !== null && at !== right && steps < MAX_ORIGIN_WALK) {
      at = at.right;
      steps++;
    }
    if (at !== right) return problem;
  }
  return null;
}
