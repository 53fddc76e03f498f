import { useEffect, useRef, useState } from "react";
import * as Y from "yjs";
import { connect, type HaloClient } from "../client/index";
import { userIdFor } from "./params";

export interface DemoConnection {
  client: HaloClient;
  doc: Y.Doc;
  /** The region this client connects to (the page's choice may be a render ahead of it). */
  region: string;
}

/**
 * One client (and one document) per region: switching region closes the old client, whose
 * member leaves at once, and connects a new one there. The name is read when connecting, so
 * renaming does not reconnect. The client also closes when the page goes away (`pagehide`),
 * so other windows see a clean leave rather than a dropped connection.
 */
export function useDemoClient(region: string, name: string): DemoConnection | null {
  const [connection, setConnection] = useState<DemoConnection | null>(null);
  const nameRef = useRef(name);
  nameRef.current = name;

  useEffect(() => {
    const client = connect({ url: location.origin, region, user: userIdFor(nameRef.current) });
    const doc = new Y.Doc();
    setConnection({ client, doc, region });
    const onPageHide = () => client.close();
    const onPageShow = (event: PageTransitionEvent) => {
      // Back from the back/forward cache with a closed client: start over.
      if (event.persisted) location.reload();
    };
    addEventListener("pagehide", onPageHide);
    addEventListener("pageshow", onPageShow);
    return () => {
      removeEventListener("pagehide", onPageHide);
      removeEventListener("pageshow", onPageShow);
      client.close();
      doc.destroy();
      setConnection(null);
    };
  }, [region]);

  return connection;
}
