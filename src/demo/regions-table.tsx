import { useEffect, useState } from "react";
import type { HaloClient, RegionsResponse } from "../client/index";

const POLL_MS = 2000;

/** The region-membership table as this page's region's directory sees it, every 2 s. */
export function RegionsTable({ client }: { client: HaloClient }) {
  const [table, setTable] = useState<RegionsResponse | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const answer = await client.fetchRegions();
        if (stopped) return;
        setTable(answer);
        setError(null);
      } catch (failure) {
        if (!stopped) setError(failure instanceof Error ? failure.message : String(failure));
      }
      // A timeout after each answer rather than an interval: slow answers never pile up.
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [client]);

  return (
    <section className="panel">
      <h2>Regions</h2>
      {table === null ? (
        <p className="muted">{error ?? "Asking the directory…"}</p>
      ) : (
        <>
          <p className="muted" data-testid="regions-answered-by" data-region={table.answeredBy}>
            As seen by <strong>{table.answeredBy}</strong>'s directory (incarnation{" "}
            {table.incarnation}, health {table.health}); new clients from here go to{" "}
            <strong>{table.clientRegion}</strong>.{error ? ` Last poll failed: ${error}` : ""}
          </p>
          <table className="regions" data-testid="regions-table">
            <thead>
              <tr>
                <th>region</th>
                <th>status</th>
                <th>incarnation</th>
                <th>heartbeat</th>
                <th>shards</th>
                <th>connections</th>
                <th>heard</th>
              </tr>
            </thead>
            <tbody>
              {table.regions.map((entry) => (
                <tr
                  key={entry.region}
                  data-testid={`region-row-${entry.region}`}
                  data-status={entry.status}
                  className={entry.region === table.answeredBy ? "answered" : undefined}
                >
                  <td>
                    {entry.region}
                    {entry.region === table.answeredBy ? (
                      <span className="tag" title="this directory answered">
                        answered
                      </span>
                    ) : null}
                  </td>
                  <td>
                    <span className={`region-status region-${entry.status}`}>{entry.status}</span>
                  </td>
                  <td>{entry.incarnation}</td>
                  <td>{entry.heartbeat}</td>
                  <td>{entry.shards}</td>
                  <td>{entry.load.connections}</td>
                  <td>{formatAge(entry.lastHeardMsAgo)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

function formatAge(ms: number): string {
  if (ms < 1000) return "now";
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s ago`;
}
