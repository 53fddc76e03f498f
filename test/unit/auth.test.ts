import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  SignJWT,
  UnsecuredJWT,
} from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type Capability,
  capabilitySchema,
  MAX_PATTERN_LENGTH,
  matchesPattern,
  rightsFor,
} from "../../src/auth/capabilities";
import { MAX_TOKEN_CHARS } from "../../src/auth/token-limits";
import {
  AuthError,
  type AuthErrorCode,
  createTokenVerifier,
  MAX_USER_INFO_BYTES,
  type TokenPolicy,
  type TokenVerifier,
} from "../../src/auth/token-verifier";

const SECRET = "auth-test-secret-0123456789abcdef";
const NOW = 1_800_000_000_000;
const NOW_S = NOW / 1000;
const CAP: Capability = { "team:*": ["read", "write"], lobby: ["presence"] };
const strictPolicy: TokenPolicy = {
  clockToleranceSeconds: 0,
  maxTokenLifetimeSeconds: 30 * 24 * 3600,
};

const secretBytes = (secret: string): Uint8Array => new TextEncoder().encode(secret);

/** Signs `payload` with the shared secret; `sub` and `exp` are set unless overridden with `null`. */
function hsToken(
  payload: JWTPayload,
  options: { secret?: string; alg?: string; sub?: string | null; exp?: number | null } = {},
): Promise<string> {
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: options.alg ?? "HS256" });
  if (options.sub !== null) jwt.setSubject(options.sub ?? "ada");
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? NOW_S + 60);
  return jwt.sign(secretBytes(options.secret ?? SECRET));
}

/** Runs `promise`, which must reject with an AuthError, and returns that error. */
async function authFailure(promise: Promise<unknown>): Promise<AuthError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AuthError) return error;
    throw error;
  }
  throw new Error("expected an AuthError");
}

async function expectAuthError(
  promise: Promise<unknown>,
  code: AuthErrorCode,
  message: RegExp,
): Promise<void> {
  const error = await authFailure(promise);
  expect(error.code).toBe(code);
  expect(error.message).toMatch(message);
  expect(error.name).toBe("AuthError");
}

describe("matchesPattern", () => {
  it("compares a pattern without stars exactly", () => {
    expect(matchesPattern("lobby", "lobby")).toBe(true);
    expect(matchesPattern("lobby2", "lobby")).toBe(false);
    expect(matchesPattern("lobb", "lobby")).toBe(false);
    expect(matchesPattern("Lobby", "lobby")).toBe(false);
    expect(matchesPattern("", "lobby")).toBe(false);
  });

  it("lets `*` alone match every room, the empty name included", () => {
    for (const room of ["", "a", "team:42", "x*y", "a".repeat(128)]) {
      expect(matchesPattern(room, "*")).toBe(true);
    }
  });

  it("matches a prefix pattern", () => {
    expect(matchesPattern("team:42", "team:*")).toBe(true);
    expect(matchesPattern("team:", "team:*")).toBe(true);
    expect(matchesPattern("team", "team:*")).toBe(false);
    expect(matchesPattern("teams:42", "team:*")).toBe(false);
    expect(matchesPattern("x-team:42", "team:*")).toBe(false);
  });

  it("matches a suffix pattern", () => {
    expect(matchesPattern("plan-draft", "*-draft")).toBe(true);
    expect(matchesPattern("-draft", "*-draft")).toBe(true);
    expect(matchesPattern("plan-draft2", "*-draft")).toBe(false);
    expect(matchesPattern("plan_draft", "*-draft")).toBe(false);
    expect(matchesPattern("draft", "*-draft")).toBe(false);
  });

  it("matches a pattern with stars in the middle, in order", () => {
    expect(matchesPattern("a1b2c", "a*b*c")).toBe(true);
    expect(matchesPattern("abc", "a*b*c")).toBe(true);
    expect(matchesPattern("axxbyybzzc", "a*b*c")).toBe(true);
    expect(matchesPattern("acb", "a*b*c")).toBe(false);
    expect(matchesPattern("a1c", "a*b*c")).toBe(false);
    expect(matchesPattern("a1b2c3", "a*b*c")).toBe(false);
    expect(matchesPattern("xa1b2c", "a*b*c")).toBe(false);
  });

  it("handles several stars, adjacent ones included", () => {
    expect(matchesPattern("org:7:team:3:doc", "org:*:team:*:doc")).toBe(true);
    expect(matchesPattern("org:7:doc", "org:*:team:*:doc")).toBe(false);
    expect(matchesPattern("abc", "**")).toBe(true);
    expect(matchesPattern("ab", "a**b")).toBe(true);
    expect(matchesPattern("a-b", "*a*-*b*")).toBe(true);
    expect(matchesPattern("ab", "*a*-*b*")).toBe(false);
  });

  it("lets a star match the empty string", () => {
    expect(matchesPattern("team:", "team:*")).toBe(true);
    expect(matchesPattern("ab", "a*b")).toBe(true);
    expect(matchesPattern("abc", "a*b*c")).toBe(true);
    expect(matchesPattern("ab", "*ab*")).toBe(true);
  });

  it("does not let the prefix and suffix share characters", () => {
    expect(matchesPattern("ab", "ab*ab")).toBe(false);
    expect(matchesPattern("aba", "ab*ab")).toBe(false);
    expect(matchesPattern("abab", "ab*ab")).toBe(true);
    expect(matchesPattern("ababab", "ab*ab")).toBe(true);
    expect(matchesPattern("abxab", "ab*ab")).toBe(true);
  });

  it("rejects a room where a middle part only fits by overlapping the prefix or suffix", () => {
    expect(matchesPattern("aa", "a*a*a")).toBe(false);
    expect(matchesPattern("aaa", "a*a*a")).toBe(true);
    expect(matchesPattern("abc", "ab*b*bc")).toBe(false);
    expect(matchesPattern("abbc", "ab*b*bc")).toBe(false);
    expect(matchesPattern("abbbc", "ab*b*bc")).toBe(true);
    expect(matchesPattern("xyz", "x*yz*z")).toBe(false);
  });
});

describe("rightsFor", () => {
  it("unions the rights of every matching pattern", () => {
    const capability: Capability = {
      "team:*": ["read"],
      "*:doc": ["write"],
      "team:doc": ["read", "presence"],
      other: ["write"],
    };
    expect(rightsFor("team:doc", capability)).toEqual(new Set(["read", "write", "presence"]));
    expect(rightsFor("team:x", capability)).toEqual(new Set(["read"]));
    expect(rightsFor("home:doc", capability)).toEqual(new Set(["write"]));
  });

  it("returns an empty set when nothing matches", () => {
    const rights = rightsFor("private", { "team:*": ["read"], lobby: ["presence"] });
    expect(rights).toBeInstanceOf(Set);
    expect(rights.size).toBe(0);
    expect(rightsFor("any", {}).size).toBe(0);
  });

  it("grants nothing for a matching pattern with an empty rights list", () => {
    expect(rightsFor("lobby", { lobby: [] }).size).toBe(0);
  });
});

describe("capabilitySchema", () => {
  it("accepts known rights and patterns up to the maximum length", () => {
    const capability = {
      "team:*": ["read", "write", "presence"],
      ["p".repeat(MAX_PATTERN_LENGTH)]: [],
    };
    expect(capabilitySchema.safeParse(capability).success).toBe(true);
  });

  it("rejects unknown rights", () => {
    expect(capabilitySchema.safeParse({ lobby: ["admin"] }).success).toBe(false);
    expect(capabilitySchema.safeParse({ lobby: ["read", "Write"] }).success).toBe(false);
  });

  it("rejects over-long and empty patterns", () => {
    const tooLong = "p".repeat(MAX_PATTERN_LENGTH + 1);
    expect(capabilitySchema.safeParse({ [tooLong]: ["read"] }).success).toBe(false);
    expect(capabilitySchema.safeParse({ "": ["read"] }).success).toBe(false);
  });

  it("rejects non-array rights and more rights than exist", () => {
    expect(capabilitySchema.safeParse({ lobby: "read" }).success).toBe(false);
    expect(
      capabilitySchema.safeParse({ lobby: ["read", "write", "presence", "read"] }).success,
    ).toBe(false);
  });
});

describe("token verifier: HS256", () => {
  const verifier = createTokenVerifier({ hs256Secret: SECRET }, strictPolicy);

  it("turns a valid token into a VerifiedToken", async () => {
    const user = { color: "#f00", avatar: "https://example.com/a.png" };
    const token = await hsToken({ cap: CAP, name: "Ada Lovelace", user, other: "ignored" });
    expect(await verifier.verify(token, NOW)).toEqual({
      userId: "ada",
      capability: CAP,
      expiresAt: (NOW_S + 60) * 1000,
      name: "Ada Lovelace",
      user,
    });
  });

  it("refuses a token over MAX_TOKEN_CHARS before parsing it", async () => {
    const padded = `${await hsToken({ cap: CAP })}${"x".repeat(MAX_TOKEN_CHARS)}`;
    await expectAuthError(verifier.verify(padded, NOW), "invalid_token", /over 16384 characters/);
  });

  it("leaves name and user out when the token has none", async () => {
    const verified = await verifier.verify(await hsToken({ cap: CAP }), NOW);
    expect(verified).toEqual({ userId: "ada", capability: CAP, expiresAt: NOW + 60_000 });
    expect("name" in verified).toBe(false);
    expect("user" in verified).toBe(false);
  });

  it("refuses an expired token, at and after exp", async () => {
    const token = await hsToken({ cap: CAP }, { exp: NOW_S });
    await expectAuthError(verifier.verify(token, NOW), "expired_token", /expired/);
    await expectAuthError(verifier.verify(token, NOW + 3_600_000), "expired_token", /expired/);
    // One millisecond earlier the token is still good.
    expect((await verifier.verify(token, NOW - 1)).expiresAt).toBe(NOW);
  });

  it("refuses a token whose exp is further ahead than maxTokenLifetimeSeconds", async () => {
    const verifier = createTokenVerifier(
      { hs256Secret: SECRET },
      { ...strictPolicy, maxTokenLifetimeSeconds: 3600 },
    );
    const fine = await hsToken({ cap: CAP }, { exp: NOW_S + 3600 });
    expect((await verifier.verify(fine, NOW)).expiresAt).toBe((NOW_S + 3600) * 1000);
    // The "never expires" token some issuers hand out: refused, not kept until 2286.
    const forever = await hsToken({ cap: CAP }, { exp: 9_999_999_999 });
    await expect(verifier.verify(forever, NOW)).rejects.toMatchObject({
      code: "invalid_token",
      message: "claim exp: more than 3600 s ahead (auth.maxTokenLifetimeSeconds)",
    });
  });

  it("accepts an expired token within clockToleranceSeconds, and not beyond", async () => {
    const tolerant = createTokenVerifier(
      { hs256Secret: SECRET },
      { ...strictPolicy, clockToleranceSeconds: 30 },
    );
    const token = await hsToken({ cap: CAP }, { exp: NOW_S - 20 });
    expect((await tolerant.verify(token, NOW)).userId).toBe("ada");
    await expectAuthError(tolerant.verify(token, NOW + 15_000), "expired_token", /expired/);
    await expectAuthError(verifier.verify(token, NOW), "expired_token", /expired/);
  });

  it("refuses a token signed with another secret", async () => {
    const token = await hsToken({ cap: CAP }, { secret: "some-other-secret-0123456789abcd" });
    await expectAuthError(
      verifier.verify(token, NOW),
      "invalid_token",
      /^signature does not verify$/,
    );
  });

  it("refuses a token whose payload was tampered with", async () => {
    const token = await hsToken({ cap: { lobby: ["read"] } });
    const [header, , signature] = token.split(".");
    const forged = Buffer.from(
      JSON.stringify({ sub: "ada", exp: NOW_S + 60, cap: { "*": ["read", "write"] } }),
    ).toString("base64url");
    await expectAuthError(
      verifier.verify(`${header}.${forged}.${signature}`, NOW),
      "invalid_token",
      /^signature does not verify$/,
    );
  });

  it("refuses HS512 even with the right secret", async () => {
    const token = await hsToken({ cap: CAP }, { alg: "HS512" });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /HS512/);
  });

  it("refuses ES256 when only a secret is configured", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const token = await new SignJWT({ cap: CAP })
      .setProtectedHeader({ alg: "ES256" })
      .setSubject("ada")
      .setExpirationTime(NOW_S + 60)
      .sign(privateKey);
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /ES256/);
  });

  it("refuses an unsigned token (alg none)", async () => {
    const token = new UnsecuredJWT({ cap: CAP })
      .setSubject("ada")
      .setExpirationTime(NOW_S + 60)
      .encode();
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\bnone\b/);
  });

  it("refuses a token without sub", async () => {
    const token = await hsToken({ cap: CAP }, { sub: null });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\bsub\b/);
  });

  it("refuses a token with an empty sub", async () => {
    const token = await hsToken({ cap: CAP }, { sub: "" });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\bsub\b/);
  });

  it("refuses a token without exp", async () => {
    const token = await hsToken({ cap: CAP }, { exp: null });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\bexp\b/);
  });

  it("refuses a token without cap", async () => {
    const token = await hsToken({ name: "Ada" });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\bcap\b/);
  });

  it("refuses a cap of the wrong type", async () => {
    for (const cap of [["read"], "read", 42, { lobby: "read" }, { lobby: ["admin"] }]) {
      const token = await hsToken({ cap });
      await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\bcap\b/);
    }
  });

  it("refuses user info over MAX_USER_INFO_BYTES and accepts it at the limit", async () => {
    // JSON of { blob: "x…" } is the string plus 11 characters: {"blob":""}.
    const atLimit = { blob: "x".repeat(MAX_USER_INFO_BYTES - 11) };
    expect(JSON.stringify(atLimit).length).toBe(MAX_USER_INFO_BYTES);
    const ok = await verifier.verify(await hsToken({ cap: CAP, user: atLimit }), NOW);
    expect(ok.user).toEqual(atLimit);

    const over = { blob: "x".repeat(MAX_USER_INFO_BYTES - 10) };
    const token = await hsToken({ cap: CAP, user: over });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\buser\b/);
  });

  it("counts user info in UTF-8 bytes, not characters", async () => {
    // 3000 × "é" is 3011 characters of JSON but 6011 bytes: over the documented byte limit.
    const user = { blob: "é".repeat(3000) };
    expect(new TextEncoder().encode(JSON.stringify(user)).length).toBeGreaterThan(
      MAX_USER_INFO_BYTES,
    );
    const token = await hsToken({ cap: CAP, user });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\buser\b/);
  });

  it("refuses user info that is not an object, and a name that is not a string", async () => {
    await expectAuthError(
      verifier.verify(await hsToken({ cap: CAP, user: "ada" }), NOW),
      "invalid_token",
      /\buser\b/,
    );
    await expectAuthError(
      verifier.verify(await hsToken({ cap: CAP, name: 7 }), NOW),
      "invalid_token",
      /\bname\b/,
    );
  });

  it("answers missing_token for an empty string and invalid_token for garbage", async () => {
    await expectAuthError(verifier.verify("", NOW), "missing_token", /no token/);
    await expectAuthError(verifier.verify("garbage", NOW), "invalid_token", /not a JWT/);
    await expectAuthError(verifier.verify("a.b.c", NOW), "invalid_token", /not a JWT/);
  });

  it("refuses a token whose signature part is not a signature", async () => {
    const token = await hsToken({ cap: CAP });
    const [header, payload] = token.split(".");
    const error = await authFailure(verifier.verify(`${header}.${payload}.`, NOW));
    expect(error.code).toBe("invalid_token");
  });
});

describe("token verifier: issuer and audience", () => {
  const verifier = createTokenVerifier(
    { hs256Secret: SECRET },
    {
      issuer: "https://auth.example",
      audience: "halo",
      clockToleranceSeconds: 0,
      maxTokenLifetimeSeconds: 30 * 24 * 3600,
    },
  );

  function token(iss: string | undefined, aud: string | string[] | undefined): Promise<string> {
    const jwt = new SignJWT({ cap: CAP })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("ada")
      .setExpirationTime(NOW_S + 60);
    if (iss !== undefined) jwt.setIssuer(iss);
    if (aud !== undefined) jwt.setAudience(aud);
    return jwt.sign(secretBytes(SECRET));
  }

  it("accepts the configured issuer and audience", async () => {
    expect((await verifier.verify(await token("https://auth.example", "halo"), NOW)).userId).toBe(
      "ada",
    );
    const multi = await token("https://auth.example", ["other", "halo"]);
    expect((await verifier.verify(multi, NOW)).userId).toBe("ada");
  });

  it("refuses a wrong or missing issuer", async () => {
    await expectAuthError(
      verifier.verify(await token("https://evil.example", "halo"), NOW),
      "invalid_token",
      /\biss\b/,
    );
    await expectAuthError(
      verifier.verify(await token(undefined, "halo"), NOW),
      "invalid_token",
      /\biss\b/,
    );
  });

  it("refuses a wrong or missing audience", async () => {
    await expectAuthError(
      verifier.verify(await token("https://auth.example", "elsewhere"), NOW),
      "invalid_token",
      /\baud\b/,
    );
    await expectAuthError(
      verifier.verify(await token("https://auth.example", undefined), NOW),
      "invalid_token",
      /\baud\b/,
    );
  });

  it("ignores iss and aud when the policy does not set them", async () => {
    const lax = createTokenVerifier({ hs256Secret: SECRET }, strictPolicy);
    expect((await lax.verify(await token("anyone", "anything"), NOW)).userId).toBe("ada");
  });
});

describe("token verifier: ES256 and RS256 against a JWKS", () => {
  let es: CryptoKeyPair;
  let rs: CryptoKeyPair;
  let otherEs: CryptoKeyPair;
  let verifier: TokenVerifier;

  async function publicJwk(key: CryptoKey, kid: string, alg: string): Promise<JWK> {
    return { ...(await exportJWK(key)), kid, alg, use: "sig" };
  }

  function asymmetricToken(
    key: CryptoKey,
    alg: "ES256" | "RS256",
    kid: string | undefined,
    payload: JWTPayload = { cap: CAP, name: "Ada" },
  ): Promise<string> {
    return new SignJWT(payload)
      .setProtectedHeader(kid === undefined ? { alg } : { alg, kid })
      .setSubject("ada")
      .setExpirationTime(NOW_S + 60)
      .sign(key);
  }

  beforeAll(async () => {
    [es, rs, otherEs] = await Promise.all([
      generateKeyPair("ES256"),
      generateKeyPair("RS256"),
      generateKeyPair("ES256"),
    ]);
    const jwks: JSONWebKeySet = {
      keys: [
        await publicJwk(es.publicKey, "es-1", "ES256"),
        await publicJwk(rs.publicKey, "rs-1", "RS256"),
      ],
    };
    verifier = createTokenVerifier({ jwks }, strictPolicy);
  });

  it("verifies an ES256 token", async () => {
    const verified = await verifier.verify(
      await asymmetricToken(es.privateKey, "ES256", "es-1"),
      NOW,
    );
    expect(verified).toEqual({
      userId: "ada",
      capability: CAP,
      expiresAt: NOW + 60_000,
      name: "Ada",
    });
  });

  it("verifies an RS256 token", async () => {
    const verified = await verifier.verify(
      await asymmetricToken(rs.privateKey, "RS256", "rs-1"),
      NOW,
    );
    expect(verified).toEqual({
      userId: "ada",
      capability: CAP,
      expiresAt: NOW + 60_000,
      name: "Ada",
    });
  });

  it("refuses an ES256 token signed with a key that is not in the JWKS", async () => {
    const token = await asymmetricToken(otherEs.privateKey, "ES256", "es-1");
    await expectAuthError(
      verifier.verify(token, NOW),
      "invalid_token",
      /^signature does not verify$/,
    );
  });

  it("refuses an RS256 token whose kid is not in the JWKS", async () => {
    const token = await asymmetricToken(rs.privateKey, "RS256", "rs-unknown");
    const error = await authFailure(verifier.verify(token, NOW));
    expect(error.code).toBe("invalid_token");
    expect(error.message).toMatch(/no configured key/);
  });

  it("refuses HS256 when only a JWKS is configured", async () => {
    const token = await hsToken({ cap: CAP });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /HS256/);
  });

  it("refuses an unsigned token when only a JWKS is configured", async () => {
    const token = new UnsecuredJWT({ cap: CAP })
      .setSubject("ada")
      .setExpirationTime(NOW_S + 60)
      .encode();
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\bnone\b/);
  });

  it("refuses an expired ES256 token with expired_token", async () => {
    const token = await asymmetricToken(es.privateKey, "ES256", "es-1");
    await expectAuthError(verifier.verify(token, NOW + 61_000), "expired_token", /expired/);
  });

  it("checks claims of asymmetric tokens too", async () => {
    const token = await asymmetricToken(rs.privateKey, "RS256", "rs-1", { name: "Ada" });
    await expectAuthError(verifier.verify(token, NOW), "invalid_token", /\bcap\b/);
  });

  it("with both a secret and a JWKS, picks the key by algorithm", async () => {
    const jwks: JSONWebKeySet = { keys: [await publicJwk(es.publicKey, "es-1", "ES256")] };
    const both = createTokenVerifier({ hs256Secret: SECRET, jwks }, strictPolicy);
    expect((await both.verify(await hsToken({ cap: CAP }), NOW)).userId).toBe("ada");
    const es256 = await asymmetricToken(es.privateKey, "ES256", "es-1");
    expect((await both.verify(es256, NOW)).userId).toBe("ada");
    await expectAuthError(
      both.verify(await hsToken({ cap: CAP }, { alg: "HS512" }), NOW),
      "invalid_token",
      /HS512/,
    );
  });
});
