/**
 * `halo/client`: the SDK for browsers and Node. `connect({ url, token | getToken })`, then
 * `client.room(name, { doc?, presence? })`; see README.md, "Client SDK".
 */
export type { LeaveReason, Member, MemberStatus, User } from "../presence/presence-schema";
export type { BackoffSettings } from "./backoff";
export type { ClientClock } from "./client-clock";
export {
  type ClientEvents,
  type ConnectOptions,
  connect,
  HaloClient,
  type PresenceQuery,
  type PresenceResponse,
  type RegionsResponse,
} from "./halo-client";
export { HaloRequestError } from "./halo-request-error";
export { Room, type RoomEvents, type RoomOptions } from "./room";
export type { ConnectionStatus, SocketLike, WebSocketConstructor } from "./room-connection";
export { type PresenceEvents, type PresenceState, RoomPresence } from "./room-presence";
export type { GetToken } from "./token-source";
