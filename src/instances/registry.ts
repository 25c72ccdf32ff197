// The instance use cases: register an uploaded domain, delete one, and keep dnsmasq's files in
// step with the database after each change.

import type { Config } from '../config/index.js';
import type { DnsmasqFiles } from '../dnsmasq/files.js';
import type { HostEntry } from '../dnsmasq/render.js';
import { parseDomainXml } from '../libvirt/domain.js';
import { moduleLogger } from '../log.js';
import { tagKeyProblem } from '../metadata/ec2.js';
import { overrideProblems } from '../metadata/instanceData.js';
import { formatIPv4, parseIPv4 } from '../net/ip.js';
import { pickIPv4 } from '../store/allocate.js';
import type { Instance, RegisterResult, Store } from '../store/store.js';

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

export class Registry {
  private reserved: Set<number>;

  constructor(private cfg: Config, private readonly store: Store, private readonly dnsmasq: DnsmasqFiles) {
    this.reserved = reservedAddresses(cfg);
  }

  setConfig(cfg: Config): void {
    this.cfg = cfg;
    this.reserved = reservedAddresses(cfg);
  }

  /** Parses and records a domain XML document; throws MdsError on bad input or conflicts. */
  upload(xml: string): RegisterResult {
    const d = this.cfg.dnsmasq;
    const info = parseDomainXml(xml, { network: d.netName, bridge: d.interface });
    const result = this.store.register(info, this.cfg.service.location, (isUsed) => {
      const n = pickIPv4(d.net, this.reserved, (a) => isUsed(formatIPv4(a)));
      return n === null ? null : formatIPv4(n);
    });
    const i = result.instance;
    log.info(result.created ? 'registered instance' : 'updated instance', {
      name: i.name, uuid: i.uuid, mac: i.mac, ipv4: i.ipv4, changed: result.changed,
    });
    if (result.changed) {
      this.dnsmasq.changed();
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
    return this.store.all();
  }
}
