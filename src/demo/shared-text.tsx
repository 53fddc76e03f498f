import { useEffect, useRef } from "react";
import { useRoom } from "../client/react";
import { bindTextarea } from "./textarea-binding";

/** A textarea bound to the room document's `text`, edited by everyone at once. */
export function SharedText() {
  const doc = useRoom().doc;
  const textarea = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    if (doc === null || textarea.current === null) return;
    return bindTextarea(textarea.current, doc.getText("text"));
  }, [doc]);

  return (
    <section className="panel">
      <h2>Shared text</h2>
      <textarea
        ref={textarea}
        className="shared-text"
        data-testid="shared-text"
        aria-label="Shared text"
        placeholder="Type here: every window in the room sees it, whatever its region."
        spellCheck={false}
        rows={8}
      />
    </section>
  );
}
