import { verifyRefresh } from "../src/auth/refresh";
import type { TokenVerifier } from "../src/auth/token-verifier";
import type { AuthSettings } from "../src/config/config-schema";
import type { ConnectionId } from "../src/core/awareness-table";
import type { RoomEffect, RoomReplica } from "../src/core/room-replica";
import { CloseCode } from "../src/protocol/close-codes";

/** What the token refresh needs from the shard. */
export interface TokenRefreshHost {
  auth: AuthSettings;
  /** The verifier the Worker uses too (src/auth/configured-verifier.ts); null without keys. */
  verifier: () => TokenVerifier | null;
  /** The room, loaded again if it was unloaded meanwhile. */
  room: (name: string) => Promise<RoomReplica>;
  run: (room: RoomReplica, effects: RoomEffect[]) => Promise<void>;
}

/**
 * In-band token refresh (`auth.refresh`). The room core is synchronous and checking a
 * signature is not, so the core hands each fresh token over as a `verify-token` effect; this
 * checks it exactly as the Worker checks one at the door for the room, and gives the verdict
 * back to the core (`refreshIdentity`, or a 1008 close naming the problem). Frame size, rate
 * limit and the message's schema were enforced by the core before the token got here.
 */
export class TokenRefresh {
  /**
   * Each connection's refreshes in arrival order: other frames may be handled while a token is
   * being checked, and an older token checked last must not replace a newer one.
   */
  private readonly queues = new Map<ConnectionId, Promise<void>>();

  constructor(private readonly host: TokenRefreshHost) {}

  /** Checks every token among `effects` (from `room.receive`); resolves once each verdict is applied. */
  async handle(room: string, effects: readonly RoomEffect[]): Promise<void> {
    for (const effect of effects) {
      if (effect.kind !== "verify-token") continue;
      const { connectionId, token } = effect;
      await this.inOrder(connectionId, () => this.refresh(room, connectionId, token));
    }
  }

  private inOrder(connectionId: ConnectionId, work: () => Promise<void>): Promise<void> {
    // After the previous one whatever its outcome: one failure must not stall the connection's queue.
    const next = (this.queues.get(connectionId) ?? Promise.resolve()).then(work, work);
    this.queues.set(connectionId, next);
    return next.finally(() => {
      if (this.queues.get(connectionId) === next) this.queues.delete(connectionId);
    });
  }

  private async refresh(name: string, connectionId: ConnectionId, token: string): Promise<void> {
    let apply: (room: RoomReplica, nowMs: number) => RoomEffect[];
    try {
      const verdict = await verifyRefresh(
        token,
        name,
        this.host.auth,
        this.host.verifier(),
        Date.now(),
      );
      apply = verdict.ok
        ? (room, nowMs) => room.refreshIdentity(connectionId, verdict.identity, nowMs)
        : (room, nowMs) =>
            room.reject(connectionId, CloseCode.PolicyViolation, verdict.reason, nowMs);
    } catch (error) {
      console.error(`room ${name}: token refresh failed`, error);
      apply = (room, nowMs) =>
        room.reject(
          connectionId,
          CloseCode.InternalError,
          "token refresh failed; reconnect",
          nowMs,
        );
    }
    const room = await this.host.room(name);
    await this.host.run(room, apply(room, Date.now()));
  }
}
