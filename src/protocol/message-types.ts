/** Top-level y-websocket message types (the first varUint of every frame). */
export const MessageType = {
  Sync: 0,
  Awareness: 1,
  Auth: 2,
  QueryAwareness: 3,
  /**
   * Halo's extension channel: one JSON message per frame (extension-messages.ts). The server
   * sends it only to connections that opted in, so stock clients never see a type they do not
   * know; 100 keeps clear of the small numbers other y-websocket extensions use.
   */
  Halo: 100,
} as const;

/** Sub-types of a sync message (y-protocols/sync). */
export const SyncMessageType = {
  Step1: 0,
  Step2: 1,
  Update: 2,
} as const;

/** Sub-types of an auth message (y-protocols/auth). */
export const AuthMessageType = {
  PermissionDenied: 0,
} as const;
