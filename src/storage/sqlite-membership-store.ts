import type { Region } from "../config/regions";
import { type FaultPlan, faultPlanSchema } from "../membership/fault-plan";
import type { PersistedMembership } from "../membership/membership-node";
import { regionEntrySchema } from "../membership/membership-schema";
import type { SqliteHost } from "./sqlite-room-storage";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS directory_state (
    key TEXT PRIMARY KEY, value TEXT NOT NULL
  ) WITHOUT ROWID;
`;

export interface StoredDirectory {
  region: Region | undefined;
  membership: PersistedMembership | undefined;
  faults: FaultPlan | undefined;
}

/**
 * A directory's state in its Durable Object's SQLite: its region, the membership core's
 * persisted table (written when statuses or incarnations change, not on every heartbeat), and
 * the injected fault plan. A row that no longer parses is dropped: the directory then starts
 * afresh and rejoins through its seeds, which loses nothing that gossip cannot restore.
 */
export class SqliteMembershipStore {
  constructor(private readonly host: SqliteHost) {
    host.sql.exec(SCHEMA);
  }

  load(): StoredDirectory {
    const rows = new Map<string, string>();
    for (const row of this.host.sql.exec<{ key: string; value: string }>(
      "SELECT key, value FROM directory_state",
    )) {
      rows.set(row.key, row.value);
    }
    return {
      region: rows.get("region") as Region | undefined,
      membership: parseMembership(rows.get("membership")),
      faults: parseFaults(rows.get("faults")),
    };
  }

  saveRegion(region: Region): void {
    this.#put("region", region);
  }

  saveMembership(state: PersistedMembership): void {
    this.#put("membership", JSON.stringify(state));
  }

  saveFaults(plan: FaultPlan): void {
    this.#put("faults", JSON.stringify(plan));
  }

  #put(key: string, value: string): void {
    this.host.sql.exec(
      "INSERT INTO directory_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      value,
    );
  }
}

function parseMembership(text: string | undefined): PersistedMembership | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as PersistedMembership;
    const entries = value.entries.filter((entry) => regionEntrySchema.safeParse(entry).success);
    return Number.isSafeInteger(value.incarnation) && Number.isSafeInteger(value.heartbeat)
      ? { ...value, entries }
      : undefined;
  } catch {
    return undefined;
  }
}

function parseFaults(text: string | undefined): FaultPlan | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = faultPlanSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
