import type { MemberRecord } from "./replica-messages";

/**
 * Versions start at `t × 64` for a room loaded at millisecond `t`, like the awareness relay
 * clocks: a replica that restarted numbers its changes above everything it numbered before,
 * without having stored a clock.
 */
export const VERSION_STEPS_PER_MS = 2 ** 6;

interface Known {
  version: number;
  region: string;
  /** Its region was declared dead: the same version may come back when the region does. */
  lost: boolean;
}

/**
 * The room's Lamport clock and, per clientID, the version and owner of the record this replica
 * holds. Deciding between two records needs nothing else: the higher version wins, then the
 * greater region name, so every replica picks the same one whatever order records arrive in.
 */
export class MemberVersions {
  private clock: number;
  private readonly known = new Map<number, Known>();

  constructor(loadedAtMs: number) {
    this.clock = Math.floor(loadedAtMs) * VERSION_STEPS_PER_MS;
  }

  /** The clock: every record this replica has numbered is at or below it. */
  get asOf(): number {
    return this.clock;
  }

  /** A version seen from a peer: later local changes are numbered above it. */
  observe(version: number): void {
    if (version > this.clock) this.clock = version;
  }

  /** The version for a new local change. */
  next(): number {
    this.clock += 1;
    return this.clock;
  }

  of(clientId: number): Readonly<Known> | undefined {
    return this.known.get(clientId);
  }

  set(clientId: number, version: number, region: string): void {
    this.known.set(clientId, { version, region, lost: false });
  }

  /** Whether `record` outranks the record held for its clientID. */
  outranks(record: Pick<MemberRecord, "clientId" | "version" | "region">): boolean {
    const held = this.known.get(record.clientId);
    if (held === undefined) return true;
    // A region that comes back re-announces what was dropped when it was declared dead.
    if (held.lost && held.region === record.region) return record.version >= held.version;
    if (record.version !== held.version) return record.version > held.version;
    return record.region > held.region;
  }

  /** Marks every record `region` owns as lost (its region was declared dead); returns their clientIDs. */
  loseRegion(region: string): number[] {
    const lost: number[] = [];
    for (const [clientId, held] of this.known) {
      if (held.region === region && !held.lost) {
        held.lost = true;
        lost.push(clientId);
      }
    }
    return lost;
  }

  /** The clientIDs whose record `region` owns (lost ones included). */
  ownedBy(region: string): number[] {
    const ids: number[] = [];
    for (const [clientId, held] of this.known) if (held.region === region) ids.push(clientId);
    return ids;
  }
}
