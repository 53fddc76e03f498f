/**
 * The single edit that turns one string into another, found by common prefix and suffix: what
 * a textarea's `input` event did, as one delete and one insert for a Y.Text. Pure, so it is
 * tested in Node (test/unit/text-diff.test.ts).
 */
export interface TextEdit {
  /** Where the edit starts, in UTF-16 code units (Y.Text's and the textarea's index). */
  index: number;
  /** How many code units of the old text go. */
  remove: number;
  /** What comes in their place. */
  insert: string;
}

/**
 * The edit from `before` to `after`. `caret` is the selection end after the edit, when known:
 * typing "a" into "aa" could be an insert at 0, 1 or 2, and the caret says which, so the new
 * characters are the ones the user typed (which matters to concurrent edits beside them).
 * Surrogate pairs are never split: an edit boundary inside one moves outward.
 */
export function diffText(before: string, after: string, caret?: number): TextEdit {
  const shortest = Math.min(before.length, after.length);
  let prefix = 0;
  while (prefix < shortest && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++;
  if (caret !== undefined) {
    // The true edit starts at or before `caret - inserted + removed`; see the comment above.
    const growth = Math.max(0, after.length - before.length);
    prefix = Math.max(0, Math.min(prefix, caret - growth));
  }
  if (prefix > 0 && isHighSurrogate(after.charCodeAt(prefix - 1))) prefix--;

  let suffix = 0;
  const maxSuffix = shortest - prefix;
  while (
    suffix < maxSuffix &&
    before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)
  )
    suffix++;
  if (suffix > 0 && isLowSurrogate(after.charCodeAt(after.length - suffix))) suffix--;

  return {
    index: prefix,
    remove: before.length - prefix - suffix,
    insert: after.slice(prefix, after.length - suffix),
  };
}

/** Applies an edit to a string (what the Y.Text does with it; tests use it as the oracle). */
export function applyEdit(text: string, edit: TextEdit): string {
  return text.slice(0, edit.index) + edit.insert + text.slice(edit.index + edit.remove);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
