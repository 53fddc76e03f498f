// The floor inside workerd: a Worker that hands each WebSocket to one Durable Object per room
// path, which accepts it with the hibernation API and sends every frame it receives to every
// socket of the room (the sender too), as bench's `ws-relay` does in Node. No Yjs, no storage,
// no checks: what the runtime's socket path costs on its own, for Halo to be compared with.
import { DurableObject } from "cloudflare:workers";

export class RelayRoom extends DurableObject {
  async fetch() {
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(_ws, message) {
    for (const socket of this.ctx.getWebSockets()) {
      try {
        socket.send(message);
      } catch {
        // closing: its close event follows
      }
    }
  }

  webSocketClose(ws, code) {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code);
    } catch {
      // already closed
    }
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    if (request.headers.get("upgrade") !== "websocket")
      return new Response("not found", { status: 404 });
    return env.ROOM.get(env.ROOM.idFromName(url.pathname)).fetch(request);
  },
};
