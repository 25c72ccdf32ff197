// The instance use cases: register a domain from its XML and delete one, each keeping dnsmasq's
// files in step with the store; and the reads the admin side needs.

import type { Config, ConfigSource } from '../config/index.js';
import type { DnsmasqFiles } from '../dnsmasq/files.js';
import { moduleLogger } from '../log.js';
import { MdsError } from '../errors.js';
import { canonicalUuid } from '../ids.js';
import { UnfilteredWarnings } from '../metadata/isolation.js';
import { isPrefixName } from '../names.js';
import { ipv6ForIPv4, withIPv6 } from '../net/ip6.js';
import type { Allocate, HostEntry, Instance, Rekeyed, RegisterOutcome, RegisterResult, Registration, Store } from '../store/store.js';
import { ipv4Allocator } from './allocation.js';
import { DomainParser } from './domainParser.js';
import { GroupCommit } from './groupCommit.js';
import { EntryMemo, uniqueHostNames, type HostNameCollision } from './hostNames.js';
import { metadataWarnings } from './warnings.js';

const log = moduleLogger('instances');

/** What the registry asks of the dnsmasq files: a coalesced rewrite, or one right now. */
export type HostFiles = Pick<DnsmasqFiles, 'scheduleWrite' | 'flush'>;

export class Registry {
  private allocator: { for: Config; allocate: Allocate } | null = null;
  private readonly commits = new GroupCommit<Registration, RegisterResult>((group) => this.commit(group));
  /** The host name collisions last reported, so that each is logged once, not at every rewrite. */
  private reportedCollisions = '[]';
  private collisions: readonly HostNameCollision[] = [];
  private readonly unfiltered = new UnfilteredWarnings();
  /** Each host's entry, kept from one rewrite of the dnsmasq files to the next. */
  private readonly entries = new EntryMemo();

  constructor(
    private readonly config: ConfigSource,
    private readonly store: Store,
    private readonly dnsmasq: HostFiles,
    private readonly parser = new DomainParser(),
  ) {}

  /**
   * Records the domain a libvirt XML document describes: a new one gets an address, a known one
   * keeps it. Uploads that arrive together are committed together (see groupCommit.ts). Rejects
   * with an MdsError on bad input or a conflict.
   */
  async register(xml: string): Promise<RegisterResult> {
    const cfg = this.config();
    const info = await this.parser.parse(xml, { network: cfg.dnsmasq.netName, bridge: cfg.dnsmasq.interface });
    const { name, uuid, mac, metadata, arch, nwfilter } = info;
    const prefix = metadata['userdata_prefix'];
    // Refused here rather than when the VM asks: the host's hook learns of it, and no record is
    // stored that could only ever answer its user-data with an error.
    if (prefix !== undefined && !isPrefixName(prefix)) {
      throw new MdsError(
        'BAD_USERDATA_PREFIX',
        `userdata_prefix "${prefix.slice(0, 64)}" of domain ${name} is not a template name: it may only name a template in ` +
          `${cfg.mdserver.userdataPrefixDir}/ of the userdata directory (letters, digits, ".", "_" and "-", not starting with ".")`,
      );
    }
    const r = await this.commits.submit({ name, uuid, mac, metadata, arch, nwfilter, location: cfg.service.location, host: cfg.store.hostName });
    return { ...r, instance: this.addressed(r.instance) };
  }

  /** The record with its IPv6 address as the configuration in force derives it. */
  private addressed(i: Instance): Instance {
    return withIPv6(i, this.config().dnsmasq.plan6);
  }

  /**
   * Deletes the instance named `name` and writes the dnsmasq files before returning, not
   * coalesced: whoever deleted it is told its lease entry is gone.
   */
  async delete(name: string): Promise<Instance | undefined> {
    const deleted = await this.store.delete(name);
    const gone = deleted && this.addressed(deleted);
    if (gone) {
      log.info('deleted instance', { name: gone.name, uuid: gone.uuid, ipv4: gone.ipv4 });
      this.dnsmasq.flush();
    }
    return gone;
  }

  /**
   * Moves the instance named `name` to the uuid its domain was defined again under, keeping its
   * address and instance id (the host's `mdserver instances rekey`). Undefined when there is no
   * such instance; BAD_REQUEST for a uuid that is not one, CONFLICT for one in use.
   */
  async rekey(name: string, rawUuid: string): Promise<Rekeyed | undefined> {
    const uuid = canonicalUuid(rawUuid);
    if (!uuid) throw new MdsError('BAD_REQUEST', `"${rawUuid.slice(0, 64)}" is not a uuid`);
    const found = await this.store.rekey(name, uuid);
    const r = found && { ...found, instance: this.addressed(found.instance) };
    if (r && r.previousUuid !== uuid) {
      log.info('moved instance to a new uuid', { name, from: r.previousUuid, to: uuid, ipv4: r.instance.ipv4 });
      // A name with no DNS-safe characters takes its host name from the uuid.
      this.dnsmasq.scheduleWrite();
    }
    return r;
  }

  /** Stops the XML parser's worker threads. */
  close(): Promise<void> {
    return this.parser.close();
  }

  list(): Instance[] {
    return this.store.all().map((i) => this.addressed(i));
  }

  get(name: string): Instance | undefined {
    const i = this.store.byName(name);
    return i && this.addressed(i);
  }

  /** Why the shared store cannot take uploads now, or null when it can. */
  storeProblem(): string | null {
    const r = this.store.reachability?.();
    if (!r || r.ok) return null;
    return `the instance store is unreachable since ${new Date(r.since).toISOString()} (${r.error ?? 'unknown error'}): metadata is served from memory, uploads are refused`;
  }

  count(): number {
    return this.store.count();
  }

  /** The host names several instances share, as the last write of dnsmasq's files resolved them. */
  hostNameCollisions(): readonly HostNameCollision[] {
    return this.collisions;
  }

  /** The dnsmasq files' entries: each host name once, whatever the database holds. */
  hostEntries(): HostEntry[] {
    const cfg = this.config();
    const all = this.store.hostEntries();
    // A host that does not share the VM network with the others lists only the VMs it runs.
    const mine = cfg.store.dhcpScope === 'local' ? all.filter((h) => h.host === cfg.store.hostName) : all;
    const plan = cfg.dnsmasq.plan6;
    // withIPv6, without a copy of each record on the way.
    const { entries, collisions } = uniqueHostNames(mine, plan ? (h) => ipv6ForIPv4(plan, h.ipv4) : undefined, this.entries.use(plan));
    this.report(collisions);
    return entries;
  }

  /**
   * Warns about host names that several instances share (a database from before uploads were
   * refused for it): at start-up, and again whenever the set of them changes.
   */
  private report(collisions: readonly HostNameCollision[]): void {
    const text = JSON.stringify(collisions);
    if (text === this.reportedCollisions) return;
    this.reportedCollisions = text;
    this.collisions = collisions;
    for (const c of collisions) {
      log.warn('instances share a host name: the first seen keeps it in DNS; rename or delete the others', {
        hostName: c.hostName,
        kept: `${c.kept.name} (${c.kept.uuid})`,
        listedAs: c.renamed.map((r) => `${r.name} (${r.uuid}) as ${r.listedAs}`).join(', '),
      });
    }
  }

  private async commit(group: readonly Registration[]): Promise<RegisterOutcome[]> {
    const outcomes = await this.store.registerAll(group, this.allocatorFor(this.config()));
    let changed = false;
    outcomes.forEach((o, i) => {
      if (o instanceof Error) return;
      changed ||= o.changed;
      this.logRegistered(group[i] as Registration, { ...o, instance: this.addressed(o.instance) });
    });
    // Before the replies go out: when nothing was written lately the files are written at once,
    // so a lone upload is in dnsmasq's files by the time its hook returns.
    if (changed) this.dnsmasq.scheduleWrite();
    return outcomes;
  }

  /** The allocator for the configuration in force, rebuilt only when a reload replaced it. */
  private allocatorFor(cfg: Config): Allocate {
    if (this.allocator?.for !== cfg) this.allocator = { for: cfg, allocate: ipv4Allocator(cfg) };
    return this.allocator.allocate;
  }

  private logRegistered(reg: Registration, result: RegisterResult): void {
    const i = result.instance;
    log.info(result.created ? 'registered instance' : 'updated instance', {
      name: i.name, uuid: i.uuid, mac: i.mac, ipv4: i.ipv4, ...(i.ipv6 ? { ipv6: i.ipv6 } : {}), changed: result.changed,
    });
    // Said once per change, not on every repeat upload of the same domain.
    if (result.changed) for (const problem of metadataWarnings(reg.metadata)) log.warn(problem, { name: i.name });
    const m = this.config().mdserver;
    const unfiltered = this.unfiltered.check(i, m);
    if (unfiltered) {
      log.warn('instance without a trusted nwfilter: a VM that copies its MAC and address can pass for it', {
        name: i.name, problem: unfiltered, require_filter: m.requireFilter,
      });
    }
  }
}
