import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { applyEdit, diffText } from "../../src/demo/text-diff";

describe("diffText: the demo textarea's input as one edit", () => {
  test("typing, deleting and replacing a selection", () => {
    expect(diffText("", "a")).toEqual({ index: 0, remove: 0, insert: "a" });
    expect(diffText("helo", "hello", 4)).toEqual({ index: 3, remove: 0, insert: "l" });
    expect(diffText("hello", "hell")).toEqual({ index: 4, remove: 1, insert: "" });
    expect(diffText("hello world", "hello there", 11)).toEqual({
      index: 6,
      remove: 5,
      insert: "there",
    });
    expect(diffText("same", "same")).toEqual({ index: 4, remove: 0, insert: "" });
  });

  test("the caret says which of equal characters was typed", () => {
    // "aa" to "aaa" with the caret after the second character: the new "a" is the middle one.
    expect(diffText("aa", "aaa", 2)).toEqual({ index: 1, remove: 0, insert: "a" });
    expect(diffText("aa", "aaa", 1)).toEqual({ index: 0, remove: 0, insert: "a" });
    // Without a caret, the longest common prefix wins.
    expect(diffText("aa", "aaa")).toEqual({ index: 2, remove: 0, insert: "a" });
    // Delete at the caret (the Delete key at 0) in a run of equal characters.
    expect(diffText("aab", "ab", 0)).toEqual({ index: 0, remove: 1, insert: "" });
  });

  test("never splits a surrogate pair", () => {
    // 😀 is \ud83d\ude00 and 😁 is \ud83d\ude01: they share their high surrogate.
    const edit = diffText("x😀y", "x😁y");
    expect(edit).toEqual({ index: 1, remove: 2, insert: "😁" });
    expect(diffText("😀", "😀😀")).toEqual({ index: 2, remove: 0, insert: "😀" });
    expect(diffText("a😀", "a😁")).toEqual({ index: 1, remove: 2, insert: "😁" });
  });

  test("applying the edit always gives the new text, for any caret", () => {
    const text = fc.string({
      unit: fc.constantFrom("a", "b", " ", "é", "😀", "😁"),
      maxLength: 12,
    });
    fc.assert(
      fc.property(
        text,
        text,
        fc.option(fc.integer({ min: -2, max: 30 })),
        (before, after, caret) => {
          const edit = diffText(before, after, caret ?? undefined);
          expect(edit.index).toBeGreaterThanOrEqual(0);
          expect(edit.remove).toBeGreaterThanOrEqual(0);
          expect(edit.index + edit.remove).toBeLessThanOrEqual(before.length);
          expect(applyEdit(before, edit)).toBe(after);
          // No boundary falls inside a pair: the insert and the removed part are whole.
          expect(edit.insert).not.toMatch(/^[\udc00-\udfff]|[\ud800-\udbff]$/);
          const removed = before.slice(edit.index, edit.index + edit.remove);
          expect(removed).not.toMatch(/^[\udc00-\udfff]|[\ud800-\udbff]$/);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("a typed run becomes exactly the typed characters at the caret", () => {
    const text = fc.string({ unit: fc.constantFrom("a", "b"), maxLength: 10 });
    fc.assert(
      fc.property(text, text, fc.nat(), (before, typed, at) => {
        const index = at % (before.length + 1);
        const after = before.slice(0, index) + typed + before.slice(index);
        const edit = diffText(before, after, index + typed.length);
        if (typed.length === 0) return;
        expect(edit).toEqual({ index, remove: 0, insert: typed });
      }),
    );
  });
});
