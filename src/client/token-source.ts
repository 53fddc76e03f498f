/** Where a room's token comes from: a fixed string, or a function asked again before expiry. */
export type GetToken = (room: string) => string | Promise<string>;

/**
 * One room's token. With `getToken` it can be refreshed; concurrent asks share one call, so a
 * reconnect and a scheduled refresh racing each other fetch once.
 */
export class TokenSource {
  private token: string | null;
  private inflight: Promise<string> | null = null;

  constructor(
    private readonly room: string,
    token: string | undefined,
    private readonly getToken: GetToken | undefined,
  ) {
    this.token = token ?? null;
  }

  /** True when a new token can be fetched. */
  get refreshable(): boolean {
    return this.getToken !== undefined;
  }

  /** The token in hand (null before the first fetch, or when the room needs none). */
  get current(): string | null {
    return this.token;
  }

  /** The token in hand, fetching the first one if needed. */
  async ensure(): Promise<string | null> {
    if (this.token !== null || !this.getToken) return this.token;
    return this.refresh();
  }

  /** A fresh token from `getToken` (which must be set). */
  refresh(): Promise<string> {
    const getToken = this.getToken;
    if (!getToken) return Promise.reject(new Error("no getToken to refresh the token with"));
    this.inflight ??= (async () => {
      try {
        const token = await getToken(this.room);
        if (typeof token !== "string" || token.length === 0)
          throw new Error("getToken returned no token");
        this.token = token;
        return token;
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }
}
