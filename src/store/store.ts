// The instance store's contract: the records it keeps and the operations every backend offers.
// SQLite (sqlite.ts) is the backend today; test/store-contract.ts holds the tests that any
// backend must pass. Nothing here knows which backend is behind it.
//
// Reads are synchronous, writes return promises. A metadata request must never wait on a network
// round trip, so reads are answered from data at hand: SQLite's file, opened in this process; a
// networked backend would answer them from an in-memory copy of every instance that it keeps
// current. A write is where the caller waits for durability anyway (an upload is acknowledged only
// once its record is stored), so a networked backend can wait for its commit there; SQLite commits
// at once and hands back a settled promise. Bookkeeping with no caller waiting (touchLocation,
// setMeta) returns nothing, so a backend may write it in the background.

export interface Instance {
  readonly name: string;
  /** `name` made safe for DNS and dnsmasq files (see names.ts). */
  readonly hostName: string;
  readonly uuid: string;
  readonly mac: string;
  readonly ipv4: string | null;
  readonly ipv6: string | null;
  readonly location: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly arch: string | null;
  /** The `<filterref filter>` of its interface on the metadata network, or null for none. */
  readonly nwfilter: string | null;
  /** The host (`[store] host_name`) that last registered it; empty for records from before. */
  readonly host: string;
  /** Milliseconds since the epoch. */
  readonly firstSeen: number;
  readonly lastUpdate: number;
}

/** A record as it is copied in from elsewhere (md_server's database): all but the derived name. */
export type NewInstance = Omit<Instance, 'hostName' | 'host'> & { readonly host?: string };

/** What registering a domain states about it; the store keeps its address and first sighting. */
export interface Registration {
  readonly name: string;
  readonly uuid: string;
  /** MAC of the domain's interface on the metadata network. */
  readonly mac: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly arch: string | null;
  /** The nwfilter on that interface; absent or null for none. */
  readonly nwfilter?: string | null;
  /** The `[service] location` of the host that registered it. */
  readonly location: string;
  /** The `[store] host_name` of that host; absent: empty. */
  readonly host?: string;
}

export interface RegisterResult {
  instance: Instance;
  created: boolean;
  /** False when the registration repeated what was already stored. */
  changed: boolean;
}

/** A record moved to a new uuid, and the uuid it had. */
export interface Rekeyed {
  instance: Instance;
  previousUuid: string;
}

/** Each registration of a group ends as its stored result or as the error that refused it. */
export type RegisterOutcome = RegisterResult | Error;

/** One line's worth of the dnsmasq host files: the part of an instance they are written from. */
export interface HostEntry {
  readonly hostName: string;
  readonly mac: string;
  readonly ipv4: string | null;
  readonly ipv6: string | null;
}

/** A host entry with what decides between two records that claim the same host name. */
export interface HostRecord extends HostEntry {
  readonly name: string;
  readonly uuid: string;
  readonly firstSeen: number;
  /** The host that last registered it (for `[store] dhcp_scope = local`). */
  readonly host: string;
}

/**
 * Chooses the address of a new record, or returns null when none is free. `isUsed` says whether
 * an address belongs to a stored instance (or to one registered earlier in the same group).
 */
export type Allocate = (isUsed: (ipv4: string) => boolean) => string | null;

/**
 * One event of a boot as cloud-init reported it (its `reporting` webhook, or `phone_home`), its
 * fields already bounded and cleaned (see provisioning/report.ts). The guest chooses every field:
 * it is for display only.
 */
export interface BootEvent {
  /** When mdserver received it, in milliseconds since the epoch (the host's clock). */
  readonly received: number;
  readonly kind: 'start' | 'finish' | 'phone-home';
  /** cloud-init's event name: a stage (`modules-final`) or `stage/module`. */
  readonly name: string;
  /** SUCCESS, WARN or FAIL on a finish; null otherwise. */
  readonly result: string | null;
  readonly description: string;
}

/** An instance's current boot: when it was begun and first read its metadata, and its events. */
export interface BootRecord {
  /** Counts the instance's boots as seen by this store, from 1. */
  readonly boot: number;
  /** When this boot was begun (an upload, or instance-id asked after a finished boot), ms. */
  readonly began: number;
  /** The boot's first metadata request, ms; null while none came. */
  readonly firstRequest: number | null;
  /** Oldest first; at most the `keep` of the last append. */
  readonly events: readonly BootEvent[];
}

/** Whether a networked store's database answers now; a store in a local file always does. */
export interface Reachability {
  readonly ok: boolean;
  /** Milliseconds since the epoch of the last change of `ok`. */
  readonly since: number;
  /** Why it does not answer, while it does not. */
  readonly error: string | null;
}

export interface Store {
  /** Increases with every change to the instances, so that caches of derived data know to drop. */
  readonly generation: number;

  byIPv4(ip: string): Instance | undefined;
  byName(name: string): Instance | undefined;
  byUuid(uuid: string): Instance | undefined;
  byMac(mac: string): Instance | undefined;
  /** Every instance, ordered by name. */
  all(): Instance[];
  count(): number;
  /**
   * What the dnsmasq host files need of every instance, ordered by name. Rewritten after each
   * burst of uploads, so a backend should build it without the full records. Host names are
   * unique ignoring case, except in records stored before that rule (or imported from
   * md_server): the caller decides who gets such a name (see instances/hostNames.ts).
   */
  hostEntries(): readonly HostRecord[];

  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  /** Notes that the host `name` (`[service] location`) runs mdserver `version` now. */
  touchLocation(name: string, hostname: string, version: string): void;

  /**
   * Records every registration of `group` in one commit, each on its own: one that conflicts
   * fails alone (its outcome is the error) and the others are stored. Outcomes are in the order
   * of `group`. A known uuid keeps its record and its address (under a new name too); a name, a
   * MAC or a host name (`hostName`, ignoring case) that belongs to another record is a CONFLICT
   * (a host name only when the record did not have it already). A domain is never matched by
   * name alone: a new VM must not inherit an old one's address (see `rekey`). `allocate` is asked for an address
   * only for a record without one (POOL_EXHAUSTED when it finds none). The promise rejects only
   * when the commit itself fails, and then nothing of the group is stored.
   */
  registerAll(group: readonly Registration[], allocate: Allocate): Promise<RegisterOutcome[]>;
  /**
   * Moves the record named `name` to `uuid`, keeping its address, MAC and first sighting: the
   * host says that domain was defined again under a new uuid. Resolves to undefined when no record
   * has that name; a uuid (or a resulting host name) that another record has is a CONFLICT.
   */
  rekey(name: string, uuid: string): Promise<Rekeyed | undefined>;
  /** Deletes the instance named `name`; resolves to the record removed, or undefined. */
  delete(name: string): Promise<Instance | undefined>;

  /** The current boot of the instance with `uuid`, or undefined when none was ever begun. */
  bootRecord(uuid: string): BootRecord | undefined;
  /**
   * Begins a new boot of the instance with `uuid` at `at` (ms), dropping the previous boot's
   * events; `firstRequest` is its first metadata request when that is what began it. Bookkeeping:
   * nothing waits on it. A uuid with no instance is ignored.
   */
  beginBoot(uuid: string, at: number, firstRequest: number | null): void;
  /** Notes the current boot's first metadata request (begins a boot when there is none). */
  markFirstRequest(uuid: string, at: number): void;
  /**
   * Appends events to the current boots of several instances in one commit, keeping only the
   * last `keep` of each. Events for a uuid with no instance are dropped.
   */
  appendBootEvents(batch: ReadonlyMap<string, readonly BootEvent[]>, keep: number): Promise<void>;
  /**
   * Sets the one-time password of the instance named `name` (replacing one not fetched yet), kept
   * until `expires` (milliseconds since the epoch) unless deleted before. Resolves false when no
   * record has that name. The password follows the record through a rename or a rekey and goes
   * with it when it is deleted.
   */
  setPassword(name: string, password: string, expires: number): Promise<boolean>;
  /** The instance's password, unless none is set or it expired by `now` (ms since the epoch). */
  password(name: string, now: number): string | undefined;
  /** Deletes the instance's password; resolves true when there was one (expired or not). */
  deletePassword(name: string): Promise<boolean>;
  /** Deletes every password expired by `now`; resolves how many went. */
  purgePasswords(now: number): Promise<number>;

  /** Absent for a local file, which is always reachable. */
  reachability?(): Reachability;
  /**
   * Calls `listener` after changes made elsewhere (by another host) were applied here, so that
   * what is derived from the records (the dnsmasq files) follows. Absent: only this process writes.
   */
  onExternalChange?(listener: () => void): void;
  /**
   * Calls `listener` with the method's name for each failed bookkeeping write made in the
   * background (setMeta, touchLocation, beginBoot, markFirstRequest), which no caller sees fail.
   * Absent: they fail, if at all, before returning.
   */
  onBackgroundFault?(listener: (operation: string) => void): void;

  close(): void | Promise<void>;
}
