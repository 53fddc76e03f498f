import * as encoding from "lib0/encoding";
import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import {
  crossedOrigins,
  misplacedItem,
  missingDependency,
  splitCharacter,
} from "../../src/core/update-integrity";

/** A document with `text` in "t" written by `client`, and a second replica of it. */
function pair(text: string, client = 7): { server: Y.Doc; writer: Y.Doc } {
  const server = new Y.Doc();
  server.clientID = client;
  server.getText("t").insert(0, text);
  const writer = new Y.Doc();
  writer.clientID = 8;
  Y.applyUpdate(writer, Y.encodeStateAsUpdate(server));
  return { server, writer };
}

/** The update `change` makes on `writer`, diffed against `server`, decoded. */
function changeOf(writer: Y.Doc, server: Y.Doc, change: () => void) {
  const before = Y.encodeStateVector(writer);
  change();
  const update = Y.diffUpdate(Y.encodeStateAsUpdate(writer, before), Y.encodeStateVector(server));
  return Y.decodeUpdate(update);
}

describe("update integrity", () => {
  it("an ordinary edit passes every check", () => {
    const { server, writer } = pair("hello 😀");
    const decoded = changeOf(writer, server, () => writer.getText("t").insert(5, ","));
    expect(missingDependency(server, decoded)).toBeNull();
    expect(misplacedItem(server, decoded)).toBeNull();
    expect(splitCharacter(server, decoded)).toBeNull();
  });

  it("an insert between the halves of a surrogate pair is found", () => {
    const { server, writer } = pair("😀");
    const decoded = changeOf(writer, server, () => writer.getText("t").insert(1, "x"));
    expect(splitCharacter(server, decoded)).toMatch(/inside a character/);
  });

  it("a deletion that cuts a surrogate pair is found", () => {
    const { server, writer } = pair("a😀b");
    const decoded = changeOf(writer, server, () => writer.getText("t").delete(0, 2));
    expect(splitCharacter(server, decoded)).toMatch(/cuts a character in half/);
  });

  it("an update that builds on content the server never got has a gap", () => {
    const { server, writer } = pair("abc");
    writer.getText("t").insert(3, "d"); // never sent
    const decoded = changeOf(writer, server, () => writer.getText("t").insert(4, "e"));
    expect(missingDependency(server, decoded)).toBe("client 8's clock 1 where 0 comes next");
  });

  it("an item whose left origin comes after its right origin is found", () => {
    const { server } = pair("abcdef");
    const encoder = encoding.createEncoder();
    for (const v of [1, 1, 8, 0]) encoding.writeVarUint(encoder, v); // 1 client, 1 struct, client 8, clock 0
    encoding.writeUint8(encoder, 0xc4); // a string item with both origins
    for (const v of [7, 4, 7, 1]) encoding.writeVarUint(encoder, v); // left 7:4, right 7:1
    encoding.writeVarString(encoder, "x");
    encoding.writeVarUint(encoder, 0); // no deletions
    const crossed = Y.decodeUpdate(encoding.toUint8Array(encoder));
    expect(missingDependency(server, crossed)).toBeNull();
    expect(crossedOrigins(server, crossed)).toBe(
      "item 8:0 has its left origin 7:4 after its right origin 7:1",
    );
    const { server: fresh, writer } = pair("abcdef");
    const fine = changeOf(writer, fresh, () => writer.getText("t").insert(2, "y"));
    expect(crossedOrigins(fresh, fine)).toBeNull();
  });
});
