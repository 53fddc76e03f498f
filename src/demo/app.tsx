import { useEffect, useState } from "react";
import { RoomProvider, usePresence, useStatus } from "../client/react";
import { CursorArea } from "./cursor-area";
import type { DemoPresence } from "./demo-presence";
import { MembersList } from "./members-list";
import { colorFor, isRegion, type PageParams, REGIONS, type Region, urlWith } from "./params";
import { RegionsTable } from "./regions-table";
import { SharedText } from "./shared-text";
import { useDemoClient } from "./use-demo-client";

/** The demo page: pick a region and a name, then share cursors and a text with the room. */
export function App({ initial }: { initial: PageParams }) {
  const [region, setRegion] = useState<Region>(initial.region);
  const [name, setName] = useState(initial.name);
  const connection = useDemoClient(region, name);
  const displayName = name.trim() || initial.name;

  useEffect(() => {
    // Keep the address bar shareable: it reopens this region and name.
    history.replaceState(null, "", urlWith(location.href, { region, name: displayName }));
  }, [region, displayName]);

  return (
    <div className="page">
      <header className="top">
        <div className="brand">
          <h1>Halo</h1>
          <p className="muted">
            Room <code data-testid="room">{initial.room}</code>: presence and a Yjs document,
            replicated between regions.
          </p>
        </div>
        <div className="controls">
          <label>
            Region
            <select
              data-testid="region-select"
              value={region}
              onChange={(event) => {
                if (isRegion(event.target.value)) setRegion(event.target.value);
              }}
            >
              {REGIONS.map((option) => (
                <option key={option} value={option}>
                  {option}
                </option>
              ))}
            </select>
          </label>
          <label>
            Name
            <input
              data-testid="name-input"
              value={name}
              maxLength={40}
              onChange={(event) => setName(event.target.value)}
            />
          </label>
        </div>
      </header>
      {connection === null ? (
        <ConnectionBadge status="connecting" />
      ) : (
        <RoomProvider
          client={connection.client}
          name={initial.room}
          doc={connection.doc}
          presence={{ name: displayName, color: colorFor(displayName), cursor: null }}
          fallback={<ConnectionBadge status="connecting" />}
        >
          <RoomView name={displayName} region={connection.region} />
          <main className="layout">
            <div className="stage">
              <CursorArea />
              <SharedText />
              <RegionsTable client={connection.client} />
            </div>
            <aside className="side">
              <MembersList />
            </aside>
          </main>
        </RoomProvider>
      )}
    </div>
  );
}

/** The room's connection status, and the display name kept in presence as it is edited. */
function RoomView({ name, region }: { name: string; region: string }) {
  const status = useStatus();
  const [, update] = usePresence<DemoPresence>();
  useEffect(() => {
    update({ name, color: colorFor(name) });
  }, [name, update]);
  return <ConnectionBadge status={status} region={region} />;
}

function ConnectionBadge({ status, region }: { status: string; region?: string }) {
  return (
    <p className="connection">
      <span className={`dot status-${status}`} aria-hidden="true" />
      <span data-testid="status" data-status={status}>
        {status}
      </span>
      {region ? <span className="muted"> to {region}</span> : null}
    </p>
  );
}
