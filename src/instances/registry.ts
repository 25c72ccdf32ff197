// The instance use cases: register an uploaded domain, delete one, and keep dnsmasq's files in
// step with the database after each change.

import type { Config, ConfigSource } from '../config/index.js';
import { describe } from '../errors.js';
import type { DnsmasqFiles } from '../dnsmasq/files.js';
import { parseDomainXml, type DomainInfo } from '../libvirt/domain.js';
import { moduleLogger } from '../log.js';
import { tagKeyProblem } from '../metadata/ec2.js';
import { overrideProblems } from '../metadata/instanceData.js';
import { formatIPv4, parseIPv4 } from '../net/ip.js';
import { pickIPv4 } from '../store/allocate.js';
import type { HostEntry, Instance, RegisterResult, Store } from '../store/store.js';

const log = moduleLogger('instances');

/** Addresses never handed to a VM besides the network and broadcast addresses. */
export function reservedAddresses(cfg: Config): Set<number> {
  const out = new Set<number>();
  for (const a of [cfg.dnsmasq.gateway, cfg.mdserver.listenAddress, cfg.dnsmasq.listenAddress]) {
    const n = a ? parseIPv4(a) : null;
    if (n !== null) out.add(n);
  }
  return out;
}

interface Waiting {
  info: DomainInfo;
  resolve: (r: RegisterResult) => void;
  reject: (e: unknown) => void;
}

export class Registry {
  private reserved: { for: Config; addresses: Set<number> } | null = null;
  private waiting: Waiting[] = [];

  constructor(private readonly config: ConfigSource, private readonly store: Store, private readonly dnsmasq: DnsmasqFiles) {}

  private reservedNow(cfg: Config): Set<number> {
    if (this.reserved?.for !== cfg) this.reserved = { for: cfg, addresses: reservedAddresses(cfg) };
    return this.reserved.addresses;
  }

  /** Parses and records a domain XML document; throws MdsError on bad input or conflicts. */
  upload(xml: string): RegisterResult {
    const result = this.register(this.parse(xml));
    if (result.changed) this.dnsmasq.changed();
    return result;
  }

  /**
   * Records a domain like `upload`, committed together with every other upload that arrives in the
   * same turn of the event loop: one transaction, so one fsync, for the group, each upload in its
   * own savepoint so that a conflict fails only its own request. With synchronous=FULL the fsync is
   * most of an upload's cost (about 3 ms of the 5 ms an upload took here); sharing it lets a host
   * that starts hundreds of domains at once register them several times faster, while every 2xx
   * still means the record is on disk. A lone upload (the qemu hook's usual case) waits only for
   * the next check phase of the event loop.
   */
  uploadGrouped(xml: string): Promise<RegisterResult> {
    let info: DomainInfo;
    try {
      info = this.parse(xml);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(describe(e)));
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ info, resolve, reject });
      if (this.waiting.length === 1) setImmediate(() => this.commitWaiting());
    });
  }

  private commitWaiting(): void {
    const group = this.waiting;
    this.waiting = [];
    let outcomes: (RegisterResult | Error)[];
    try {
      outcomes = this.store.transaction(() =>
        group.map((w) => {
          try {
            return this.register(w.info);
          } catch (e) {
            return e instanceof Error ? e : new Error(String(e));
          }
        }),
      );
    } catch (e) {
      // The commit itself failed (disk full, I/O error): nothing in the group was stored.
      for (const w of group) w.reject(e);
      return;
    }
    let changed = false;
    outcomes.forEach((o, i) => {
      const w = group[i] as Waiting;
      if (o instanceof Error) return w.reject(o);
      changed ||= o.changed;
      w.resolve(o);
    });
    if (changed) this.dnsmasq.changed();
  }

  private parse(xml: string): DomainInfo {
    const d = this.config().dnsmasq;
    return parseDomainXml(xml, { network: d.netName, bridge: d.interface });
  }

  private register(info: DomainInfo): RegisterResult {
    const cfg = this.config();
    const reserved = this.reservedNow(cfg);
    const result = this.store.register(info, cfg.service.location, (isUsed) => {
      const n = pickIPv4(cfg.dnsmasq.net, reserved, (a) => isUsed(formatIPv4(a)));
      return n === null ? null : formatIPv4(n);
    });
    const i = result.instance;
    log.info(result.created ? 'registered instance' : 'updated instance', {
      name: i.name, uuid: i.uuid, mac: i.mac, ipv4: i.ipv4, changed: result.changed,
    });
    if (result.changed) {
      // The domain is registered either way; what its metadata cannot do is said once per change.
      for (const problem of overrideProblems(info.metadata)) log.warn(problem, { name: i.name });
      for (const key of Object.keys(info.metadata)) {
        const why = tagKeyProblem(key);
        if (why) log.warn(`mdserver:${key} is not served as an instance tag: ${why}`, { name: i.name });
      }
    }
    return result;
  }

  delete(name: string): Instance | undefined {
    const gone = this.store.delete(name);
    if (gone) {
      log.info('deleted instance', { name: gone.name, uuid: gone.uuid, ipv4: gone.ipv4 });
      this.dnsmasq.changed();
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
}
