import { createExecutionContext, env, SELF } from "cloudflare:test";
import * as encoding from "lib0/encoding";
import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import worker from "../../src/worker";
import { documentOf, eventually, HANDSHAKE_HEADERS, TestClient, untilServerText } from "./client";

function syncFrame(step: number, payload: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 0);
  encoding.writeVarUint(encoder, step);
  encoding.writeVarUint8Array(encoder, payload);
  return encoding.toUint8Array(encoder);
}

function awarenessFrameWithRawState(clientId: number, clock: number, json: string): Uint8Array {
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, 1);
  encoding.writeVarUint(inner, clientId);
  encoding.writeVarUint(inner, clock);
  encoding.writeVarString(inner, json);
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 1);
  encoding.writeVarUint8Array(encoder, encoding.toUint8Array(inner));
  return encoding.toUint8Array(encoder);
}

/** A real update, cut short so that its structs break partway. */
function truncatedUpdate(): Uint8Array {
  const doc = new Y.Doc();
  doc.getText("t").insert(0, "this update will be cut short");
  const update = Y.encodeStateAsUpdate(doc);
  return update.subarray(0, update.byteLength - 8);
}

const cases: Array<{
  name: string;
  frame: () => Uint8Array | string;
  code: number;
  reason: RegExp;
}> = [
  { name: "a text frame", frame: () => "hello", code: 1003, reason: /text frames/ },
  {
    name: "a truncated varint",
    frame: () => new Uint8Array([0x80]),
    code: 1007,
    reason: /truncated varint/,
  },
  {
    name: "an unknown message type",
    frame: () => new Uint8Array([9]),
    code: 1003,
    reason: /unknown message type 9/,
  },
  {
    name: "a malformed Yjs update",
    frame: () => syncFrame(2, truncatedUpdate()),
    code: 1007,
    reason: /invalid Yjs update/,
  },
  {
    name: "random bytes as a Yjs update",
    frame: () => syncFrame(2, new Uint8Array([1, 200, 3, 4, 5, 6, 7])),
    code: 1007,
    reason: /invalid Yjs update/,
  },
  {
    name: "awareness state that is not JSON",
    frame: () => awarenessFrameWithRawState(7, 1, "{nope"),
    code: 1007,
    reason: /not valid JSON/,
  },
  {
    name: "awareness state of the wrong type",
    frame: () => awarenessFrameWithRawState(7, 1, "42"),
    code: 1007,
    reason: /JSON object or null/,
  },
  {
    name: "a frame over maxFrameBytes",
    frame: () => syncFrame(2, new Uint8Array(300_000)),
    code: 1009,
    reason: /maxFrameBytes=262144/,
  },
];

describe("bad frames close only the sender and change nothing", () => {
  for (const testCase of cases) {
    it(`${testCase.name}: closes ${testCase.code}`, async () => {
      const room = `bad-${testCase.name.replace(/[^a-z]+/gi, "-")}`;
      const good = await TestClient.connect(room);
      good.setAwareness({ name: "good" }, 1);
      good.doc.getText("t").insert(0, "intact");
      await eventually(() => good.awareness.size === 1, 2000, "setup echo");
      const before = await documentOf(room);

      const bad = await TestClient.connect(room);
      bad.setAwareness({ name: "bad" }, 1);
      await eventually(() => good.awareness.size === 2, 2000, "bad client's presence");
      bad.send(testCase.frame());
      const closed = await bad.closedWith();
      expect(closed.code).toBe(testCase.code);
      expect(closed.reason).toMatch(testCase.reason);

      expect(await documentOf(room)).toEqual(before);
      // Its awareness is removed at once, and the room keeps working for everyone else.
      await eventually(
        () => good.awareness.get(bad.doc.clientID)?.state === null,
        2000,
        "bad client's removal",
      );
      const other = await TestClient.connect(room);
      good.doc.getText("t").insert(6, " and working");
      await eventually(() => other.text === "intact and working", 2000, "the room to keep working");
      good.close();
      other.close();
    });
  }
});

describe("bad HTTP requests get a JSON error naming the field", () => {
  const call = async (path: string, init?: RequestInit) => {
    const response = await SELF.fetch(`http://halo.test${path}`, init);
    return {
      response,
      body: (await response.json()) as { error: { code: string; message: string; field?: string } },
    };
  };

  it("rejects an invalid room name", async () => {
    const { response, body } = await call("/v1/rooms/bad%20name");
    expect(response.status).toBe(400);
    expect(body.error).toMatchObject({ code: "invalid_room_name", field: "room" });
  });

  it("rejects an over-long room name", async () => {
    const { response, body } = await call(`/v1/rooms/${"r".repeat(129)}`);
    expect(response.status).toBe(400);
    expect(body.error.message).toMatch(/longer than 128/);
  });

  it("rejects a WebSocket upgrade to an invalid room name before upgrading", async () => {
    const { response, body } = await call("/v1/rooms/no%2Fslashes", { headers: HANDSHAKE_HEADERS });
    expect(response.status).toBe(400);
    expect(body.error).toMatchObject({ code: "invalid_room_name", field: "room" });
  });

  it("rejects a region that is not configured", async () => {
    const { response, body } = await call("/v1/rooms/ok?region=sam");
    expect(response.status).toBe(400);
    expect(body.error).toMatchObject({ code: "region_not_configured", field: "region" });
  });

  it("rejects a malformed state vector", async () => {
    const { response, body } = await call("/v1/rooms/ok/document?since=%%%");
    expect(response.status).toBe(400);
    expect(body.error).toMatchObject({ code: "invalid_state_vector", field: "since" });
  });

  it("answers 404 and 405 in JSON", async () => {
    const missing = await call("/v2/nothing");
    expect(missing.response.status).toBe(404);
    expect(missing.body.error.code).toBe("not_found");
    const wrongMethod = await call("/v1/rooms/ok", { method: "DELETE" });
    expect(wrongMethod.response.status).toBe(405);
    expect(wrongMethod.response.headers.get("allow")).toBe("GET");
  });

  it("answers a handshake with the wrong method with 400", async () => {
    // workerd's fetch turns any request carrying `Upgrade: websocket` into a GET on the way in,
    // so this one is handed to the Worker's own fetch handler directly.
    const request = new Request("http://halo.test/v1/rooms/ok", {
      method: "POST",
      headers: HANDSHAKE_HEADERS,
    });
    const response = await worker.fetch(request, env, createExecutionContext());
    const body = (await response.json()) as { error: { code: string; field?: string } };
    expect(response.status).toBe(400);
    expect(body.error).toMatchObject({ code: "bad_handshake", field: "method" });
  });

  it("answers a handshake without Sec-WebSocket-Key with 400", async () => {
    const { "Sec-WebSocket-Key": _key, ...headers } = HANDSHAKE_HEADERS;
    const { response, body } = await call("/v1/rooms/ok", { headers });
    expect(response.status).toBe(400);
    expect(body.error.field).toBe("sec-websocket-key");
  });

  it("answers an unsupported Sec-WebSocket-Version with 426 and the version it speaks", async () => {
    const { response, body } = await call("/v1/rooms/ok", {
      headers: { ...HANDSHAKE_HEADERS, "Sec-WebSocket-Version": "8" },
    });
    expect(response.status).toBe(426);
    expect(response.headers.get("sec-websocket-version")).toBe("13");
    expect(body.error.field).toBe("sec-websocket-version");
  });
});

describe("document REST", () => {
  it("returns the whole document, or only the diff since a state vector", async () => {
    const a = await TestClient.connect("rest-doc");
    a.doc.getText("t").insert(0, "first");
    await untilServerText("rest-doc", "first");
    const early = Y.encodeStateAsUpdate(a.doc); // what a client synced at this point holds
    const checkpoint = Y.encodeStateVector(a.doc);
    a.doc.getText("t").insert(5, " second");
    await untilServerText("rest-doc", "first second");

    const whole = await SELF.fetch("http://halo.test/v1/rooms/rest-doc/document");
    expect(whole.headers.get("content-type")).toBe("application/octet-stream");
    const doc = new Y.Doc();
    Y.applyUpdate(doc, new Uint8Array(await whole.arrayBuffer()));
    expect(doc.getText("t").toString()).toBe("first second");

    // URL-safe base64, as a client would put it in a query string.
    const since = btoa(String.fromCharCode(...checkpoint))
      .replace(/\+/g, "-")
      .replace(/\//g, "_");
    const response = await SELF.fetch(`http://halo.test/v1/rooms/rest-doc/document?since=${since}`);
    const diff = new Uint8Array(await response.arrayBuffer());
    expect(diff.byteLength).toBeLessThan(Y.encodeStateAsUpdate(a.doc).byteLength);
    const behind = new Y.Doc();
    Y.applyUpdate(behind, early);
    Y.applyUpdate(behind, diff);
    expect(behind.getText("t").toString()).toBe("first second");
    a.close();
  });

  it("summarises a room without upgrading", async () => {
    const response = await SELF.fetch("http://halo.test/v1/rooms/rest-summary");
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      room: "rest-summary",
      region: "wnam",
      shard: expect.stringMatching(/^shard:wnam:\d$/),
      connections: 0,
    });
  });
});
