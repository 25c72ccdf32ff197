// The instance use cases: register a domain from its XML and delete one, each keeping dnsmasq's
// files in step with the store; and the reads the admin side needs.

import type { Config, ConfigSource } from '../config/index.js';
import type { DnsmasqFiles } from '../dnsmasq/files.js';
import { parseDomainXml } from '../libvirt/domain.js';
import { moduleLogger } from '../log.js';
import { UnfilteredWarnings } from '../metadata/isolation.js';
import type { Allocate, HostEntry, Instance, RegisterOutcome, RegisterResult, Registration, Store } from '../store/store.js';
import { ipv4Allocator } from './allocation.js';
import { GroupCommit } from './groupCommit.js';
import { metadataWarnings } from './warnings.js';

const log = moduleLogger('instances');

/** What the registry asks of the dnsmasq files: a coalesced rewrite, or one right now. */
export type HostFiles = Pick<DnsmasqFiles, 'scheduleWrite' | 'flush'>;

export class Registry {
  private allocator: { for: Config; allocate: Allocate } | null = null;
  private readonly commits = new GroupCommit<Registration, RegisterResult>((group) => this.commit(group));
  private readonly unfiltered = new UnfilteredWarnings();

  constructor(private readonly config: ConfigSource, private readonly store: Store, private readonly dnsmasq: HostFiles) {}

  /**
   * Records the domain a libvirt XML document describes: a new one gets an address, a known one
   * keeps it. Uploads that arrive together are committed together (see groupCommit.ts). Rejects
   * with an MdsError on bad input or a conflict.
   */
  async register(xml: string): Promise<RegisterResult> {
    const cfg = this.config();
    const info = parseDomainXml(xml, { network: cfg.dnsmasq.netName, bridge: cfg.dnsmasq.interface });
    const { name, uuid, mac, metadata, arch, nwfilter } = info;
    return await this.commits.submit({ name, uuid, mac, metadata, arch, nwfilter, location: cfg.service.location });
  }

  /**
   * Deletes the instance named `name` and writes the dnsmasq files before returning, not
   * coalesced: whoever deleted it is told its lease entry is gone.
   */
  async delete(name: string): Promise<Instance | undefined> {
    const gone = await this.store.delete(name);
    if (gone) {
      log.info('deleted instance', { name: gone.name, uuid: gone.uuid, ipv4: gone.ipv4 });
      this.dnsmasq.flush();
    }
    return gone;
  }

  list(): Instance[] {
    return this.store.all();
  }

  get(name: string): Instance | undefined {
    return this.store.byName(name);
  }

  count(): number {
    return this.store.count();
  }

  hostEntries(): HostEntry[] {
    return this.store.hostEntries();
  }

  private async commit(group: readonly Registration[]): Promise<RegisterOutcome[]> {
    const outcomes = await this.store.registerAll(group, this.allocatorFor(this.config()));
    let changed = false;
    outcomes.forEach((o, i) => {
      if (o instanceof Error) return;
      changed ||= o.changed;
      this.logRegistered(group[i] as Registration, o);
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
      name: i.name, uuid: i.uuid, mac: i.mac, ipv4: i.ipv4, changed: result.changed,
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
