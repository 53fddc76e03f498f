/** A REST request the server answered with an error (its JSON `error` body). */
export class HaloRequestError extends Error {
  /** The field of the request that was wrong, when the server named one. */
  readonly field?: string;
  /** The configured limit that refused it (`limits.*`), when one did. */
  readonly limit?: { name: string; value: number };
  /** From `Retry-After` (seconds), on 429 and 503. */
  readonly retryAfterS?: number;

  constructor(
    readonly status: number,
    readonly code: string,
    /** The server's own message. */
    readonly detail: string,
    extra: { field?: string; limit?: { name: string; value: number }; retryAfterS?: number } = {},
  ) {
    super(`${status} ${code}: ${detail}`);
    this.name = "HaloRequestError";
    Object.assign(this, extra);
  }
}
