/**
 * `halo/react`: React bindings over the SDK, small on purpose. A `RoomProvider` opens a room
 * for its subtree; the hooks read it (or a room passed in) and re-render on its changes.
 */
import {
  createContext,
  createElement,
  type ReactNode,
  useCallback,
  useContext,
  useEffect,
  useState,
} from "react";
import type { Member } from "../presence/presence-schema";
import type { HaloClient } from "./halo-client";
import type { Room, RoomOptions } from "./room";
import type { ConnectionStatus } from "./room-connection";
import type { PresenceState } from "./room-presence";

const RoomContext = createContext<Room | null>(null);

/** A member whose state the app knows the shape of. */
export type MemberOf<S extends object> = Omit<Member, "state"> & { state: S };

export interface RoomProviderProps extends RoomOptions {
  client: HaloClient;
  name: string;
  children?: ReactNode;
  /** Rendered until the room exists (the first effect). */
  fallback?: ReactNode;
}

/** Opens `name` while mounted (left and closed on unmount) and gives it to the hooks below. */
export function RoomProvider({
  client,
  name,
  children,
  fallback = null,
  ...options
}: RoomProviderProps) {
  const room = useOpenRoom(client, name, options);
  return room === null ? fallback : createElement(RoomContext.Provider, { value: room }, children);
}

/**
 * Opens a room for the component's lifetime; null on the first render (rooms open in an
 * effect, so React's strict mode double mount leaves no stray socket). Options are read when
 * the room opens.
 */
export function useOpenRoom(
  client: HaloClient,
  name: string,
  options: RoomOptions = {},
): Room | null {
  const [room, setRoom] = useState<Room | null>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: options are read once, at open
  useEffect(() => {
    const opened = client.room(name, options);
    setRoom(opened);
    return () => {
      opened.destroy();
      setRoom(null);
    };
  }, [client, name]);
  return room;
}

/** The room of the nearest `RoomProvider` (or the one passed in). */
export function useRoom(room?: Room): Room {
  const fromContext = useContext(RoomContext);
  const found = room ?? fromContext;
  if (!found) throw new Error("useRoom: no room; render inside <RoomProvider> or pass one");
  return found;
}

/** This client's presence state and a function that merges fields into it (entering if needed). */
export function usePresence<S extends object = PresenceState>(
  room?: Room,
): [S | null, (fields: Partial<S>) => void] {
  const current = useRoom(room);
  const [state, setState] = useState(() => current.presence.state as S | null);
  useEffect(() => {
    const awareness = current.awareness;
    const onChange = (change: { added: number[]; updated: number[]; removed: number[] }) => {
      const mine = awareness.clientID;
      if ([...change.added, ...change.updated, ...change.removed].includes(mine))
        setState(current.presence.state as S | null);
    };
    setState(current.presence.state as S | null);
    awareness.on("change", onChange);
    return () => awareness.off("change", onChange);
  }, [current]);
  const update = useCallback(
    (fields: Partial<S>) => current.presence.update(fields as PresenceState),
    [current],
  );
  return [state, update];
}

/** Every other member of the room, with the identity the server knows; re-renders on change. */
export function useOthers<S extends object = PresenceState>(room?: Room): MemberOf<S>[] {
  const current = useRoom(room);
  return useMemberList(current, () => current.presence.others()) as MemberOf<S>[];
}

/** Every member, this client included. */
export function useMembers<S extends object = PresenceState>(room?: Room): MemberOf<S>[] {
  const current = useRoom(room);
  return useMemberList(current, () => current.presence.members()) as MemberOf<S>[];
}

/** The room's connection status. */
export function useStatus(room?: Room): ConnectionStatus {
  const current = useRoom(room);
  const [status, setStatus] = useState(current.status);
  useEffect(() => {
    setStatus(current.status);
    return current.on("status", setStatus);
  }, [current]);
  return status;
}

function useMemberList(room: Room, read: () => Member[]): Member[] {
  const [members, setMembers] = useState(read);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `read` is bound to `room`
  useEffect(() => {
    setMembers(read());
    return room.presence.on("change", () => setMembers(read()));
  }, [room]);
  return members;
}
