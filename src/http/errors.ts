import type { ContentfulStatusCode } from "hono/utils/http-status";

/** The body of every error response: a stable machine code, a sentence for humans, and the offending field when there is one. */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    field?: string;
    /** For a refused request over a configured limit: which limit (as named in `HALO_CONFIG.limits`) and its value. */
    limit?: { name: string; value: number };
  };
}

export class HttpError extends Error {
  override readonly name = "HttpError";

  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.field ? { field: this.field } : {}),
      },
    };
  }
}

/** A request over a configured limit: the body names the limit and its value, so a client can adapt. */
export class LimitExceeded extends HttpError {
  constructor(
    status: ContentfulStatusCode,
    code: string,
    message: string,
    readonly limit: { name: string; value: number },
    headers: Record<string, string> = {},
  ) {
    super(status, code, message, undefined, headers);
  }

  override toBody(): ErrorBody {
    const body = super.toBody();
    return { error: { ...body.error, limit: this.limit } };
  }
}
