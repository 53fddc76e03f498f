import * as Y from "yjs";
import { diffText } from "./text-diff";

/**
 * Binds a plain `<textarea>` to a Y.Text, both ways. Local input becomes one delete and one
 * insert in one transaction (diffText); a change from anywhere else rewrites the textarea and
 * puts the caret back where it was in the text, through Y.RelativePositions taken just before
 * the change, so a collaborator typing above the caret does not move it. Returns the unbind.
 */
export function bindTextarea(textarea: HTMLTextAreaElement, text: Y.Text): () => void {
  const doc = text.doc;
  if (doc === null) throw new Error("bindTextarea: the Y.Text must belong to a Y.Doc");
  /** Our own transactions' origin, so the observer skips their echo. */
  const origin = { binding: "textarea" };
  /** The value the textarea and the Y.Text last agreed on. */
  let shown = text.toString();
  /** The selection as relative positions, taken before a change that is not ours. */
  let saved: { start: Y.RelativePosition; end: Y.RelativePosition } | null = null;

  textarea.value = shown;

  const onInput = () => {
    const next = textarea.value;
    if (next === shown) return;
    const edit = diffText(shown, next, textarea.selectionEnd);
    doc.transact(() => {
      if (edit.remove > 0) text.delete(edit.index, edit.remove);
      if (edit.insert.length > 0) text.insert(edit.index, edit.insert);
    }, origin);
    shown = next;
  };

  const beforeTransaction = (transaction: Y.Transaction) => {
    if (transaction.origin === origin) return;
    const { selectionStart, selectionEnd } = textarea;
    // A collapsed caret sticks to the character before it (assoc -1), so text a peer types at
    // the caret lands after it; a range keeps its own characters and excludes what lands at
    // its edges.
    const collapsed = selectionStart === selectionEnd;
    saved = {
      start: Y.createRelativePositionFromTypeIndex(text, selectionStart, collapsed ? -1 : 0),
      end: Y.createRelativePositionFromTypeIndex(text, selectionEnd, -1),
    };
  };

  const observer = (event: Y.YTextEvent) => {
    if (event.transaction.origin === origin) return;
    const next = text.toString();
    if (next === textarea.value) return;
    const focused = textarea.ownerDocument.activeElement === textarea;
    const selection = saved;
    textarea.value = next;
    shown = next;
    if (!focused || selection === null) return;
    const start = Y.createAbsolutePositionFromRelativePosition(selection.start, doc);
    const end = Y.createAbsolutePositionFromRelativePosition(selection.end, doc);
    if (start === null || end === null) return;
    textarea.setSelectionRange(start.index, Math.max(start.index, end.index));
  };

  textarea.addEventListener("input", onInput);
  doc.on("beforeTransaction", beforeTransaction);
  text.observe(observer);
  return () => {
    textarea.removeEventListener("input", onInput);
    doc.off("beforeTransaction", beforeTransaction);
    text.unobserve(observer);
  };
}
