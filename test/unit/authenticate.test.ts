import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { authenticate } from "../../src/auth/authenticate";
import { verifyRefresh } from "../../src/auth/refresh";
import { createTokenVerifier } from "../../src/auth/token-verifier";
import { authSchema } from "../../src/config/config-schema";
import { HttpError } from "../../src/http/errors";

const SECRET = "unit-test-secret";
const NOW = 1_800_000_000_000;
const verifier = createTokenVerifier(
  { hs256Secret: SECRET },
  { clockToleranceSeconds: 0, maxTokenLifetimeSeconds: 30 * 24 * 3600 },
);
const strict = authSchema.parse({});
const anonymous = authSchema.parse({ anonymous: true, anonymousRights: ["read", "presence"] });
const fixedId = () => "fixed";

async function sign(cap: Record<string, string[]>, exp = NOW / 1000 + 60): Promise<string> {
  return new SignJWT({ cap })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("ada")
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));
}

async function failure(promise: Promise<unknown>): Promise<HttpError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof HttpError) return error;
    throw error;
  }
  throw new Error("expected an HttpError");
}

describe("authenticate", () => {
  it("turns a valid token into an identity with the rights of the matching patterns", async () => {
    const token = await sign({ "team:*": ["read", "write"], "team:doc": ["presence"] });
    const identity = await authenticate({ token }, "team:doc", strict, verifier, NOW, fixedId);
    expect(identity).toEqual({
      userId: "ada",
      rights: ["read", "write", "presence"],
      expiresAt: NOW + 60_000,
    });
  });

  it("prefers the Authorization header over ?token=", async () => {
    const good = await sign({ "*": ["read"] });
    const identity = await authenticate(
      { bearer: good, token: "garbage" },
      "r",
      strict,
      verifier,
      NOW,
      fixedId,
    );
    expect(identity.userId).toBe("ada");
  });

  it("answers 401 with a Bearer challenge for a missing or bad token, and 403 without read", async () => {
    const missing = await failure(authenticate({}, "r", strict, verifier, NOW, fixedId));
    expect([missing.status, missing.code, missing.headers["WWW-Authenticate"]]).toEqual([
      401,
      "missing_token",
      'Bearer realm="halo"',
    ]);
    const bad = await failure(
      authenticate({ token: "x.y.z" }, "r", strict, verifier, NOW, fixedId),
    );
    expect([bad.status, bad.code]).toEqual([401, "invalid_token"]);
    const expired = await failure(
      authenticate(
        { token: await sign({ "*": ["read"] }, NOW / 1000 - 1) },
        "r",
        strict,
        verifier,
        NOW,
        fixedId,
      ),
    );
    expect([expired.status, expired.code]).toEqual([401, "expired_token"]);
    const writeOnly = await failure(
      authenticate({ token: await sign({ "*": ["write"] }) }, "r", strict, verifier, NOW, fixedId),
    );
    expect([writeOnly.status, writeOnly.code, writeOnly.field]).toEqual([
      403,
      "forbidden",
      "token",
    ]);
  });

  it("admits anonymous clients only when configured, with ?user= or a generated id", async () => {
    expect(await authenticate({ user: "grace" }, "r", anonymous, null, NOW, fixedId)).toEqual({
      userId: "grace",
      rights: ["read", "presence"],
      expiresAt: null,
    });
    expect((await authenticate({}, "r", anonymous, null, NOW, fixedId)).userId).toBe("anon-fixed");
    const badUser = await failure(
      authenticate({ user: "no spaces" }, "r", anonymous, null, NOW, fixedId),
    );
    expect([badUser.status, badUser.code, badUser.field]).toEqual([400, "invalid_user", "user"]);
    // A token is still verified in anonymous mode; without a key it is refused, not ignored.
    const ignored = await failure(
      authenticate({ token: await sign({ "*": ["read"] }) }, "r", anonymous, null, NOW, fixedId),
    );
    expect([ignored.status, ignored.code]).toEqual([401, "invalid_token"]);
    const verified = await authenticate(
      { token: await sign({ "*": ["read"] }) },
      "r",
      anonymous,
      verifier,
      NOW,
      fixedId,
    );
    expect(verified.userId).toBe("ada");
  });
});

describe("verifyRefresh (auth.refresh on an open socket)", () => {
  it("checks the token as the door does for the room: identity, or a reason to close with", async () => {
    const good = await sign({ "team:*": ["read", "presence"] });
    expect(await verifyRefresh(good, "team:doc", strict, verifier, NOW)).toEqual({
      ok: true,
      identity: { userId: "ada", rights: ["read", "presence"], expiresAt: NOW + 60_000 },
    });
    expect(await verifyRefresh(good, "elsewhere", strict, verifier, NOW)).toEqual({
      ok: false,
      reason: 'token refresh refused: the token grants no read right in room "elsewhere"',
    });
    expect(await verifyRefresh("garbage", "team:doc", strict, verifier, NOW)).toEqual({
      ok: false,
      reason: "token refresh refused: token is not a JWT",
    });
    const stale = await sign({ "*": ["read"] }, NOW / 1000 - 60);
    expect(await verifyRefresh(stale, "team:doc", strict, verifier, NOW)).toEqual({
      ok: false,
      reason: "token refresh refused: token has expired",
    });
  });

  it("refuses every refresh without a verifier (anonymous development access), even anonymously allowed", async () => {
    const good = await sign({ "*": ["read"] });
    expect(await verifyRefresh(good, "r", anonymous, null, NOW)).toEqual({
      ok: false,
      reason: "token refresh needs a token verifier",
    });
  });
});
