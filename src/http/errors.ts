import type { ContentfulStatusCode } from "hono/utils/http-status";

/** The body of every error response: a stable machine code, a sentence for humans, and the offending field when there is one. */
export interface ErrorBody {
  error: { code: string; message: string; field?: string };
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
