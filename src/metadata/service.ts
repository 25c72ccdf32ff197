// Finds the instance behind a source address and hands out its metadata, caching the derived
// trees while the instance's record and the configuration stay the same.

import type { Config, ConfigSource } from '../config/index.js';
import { MdsError } from '../errors.js';
import { moduleLogger } from '../log.js';
import net from 'node:net';
import { eui64Mac, ipv4ForIPv6, isLinkLocal6, withIPv6 } from '../net/ip6.js';
import { NeighbourTable, NeighbourTable6 } from '../net/neighbours.js';
import { sameInstance } from '../store/rows.js';
import type { Instance, Store } from '../store/store.js';
import { ec2Tree } from './ec2.js';
import { instanceData, type InstanceData } from './instanceData.js';
import { isWithheld, WITHHELD_MESSAGE } from './isolation.js';
import { nocloudTree } from './nocloud.js';
import { openstackTree } from './openstack.js';
import type { Dir } from './tree.js';

export interface InstanceMetadata {
  data: InstanceData;
  ec2: Dir;
  /** Built on first use: most VMs only ever ask in one format. */
  readonly openstack: Dir;
  readonly nocloud: Dir;
}

function metadataOf(data: InstanceData, cfg: Config): InstanceMetadata {
  let openstack: Dir | undefined;
  let nocloud: Dir | undefined;
  return {
    data,
    ec2: ec2Tree(data, cfg),
    get openstack() {
      return (openstack ??= openstackTree(data, cfg));
    },
    get nocloud() {
      return (nocloud ??= nocloudTree(data, cfg));
    },
  };
}

const log = moduleLogger('metadata');

/** Bound on cached views; past it the cache starts over (cheap, and memory stays flat). */
const MAX_CACHED = 4096;

/** A cached view, the record it was built from, and the store generation it was last checked at. */
interface Entry {
  readonly view: InstanceMetadata;
  readonly instance: Instance;
  generation: number;
}

export class MetadataService {
  private cache = new Map<string, Entry>();
  /** The configuration the cached views were built with. */
  private cachedFor: Config | null = null;

  constructor(
    private readonly config: ConfigSource,
    private readonly store: Store,
    private readonly neighbours: NeighbourTable = new NeighbourTable(),
    private readonly neighbours6: NeighbourTable6 = new NeighbourTable6(),
  ) {}

  /**
   * The metadata of the instance whose address is `ip`, or undefined for an unknown client. With
   * `ipv6 = yes` an IPv6 caller is found by its own address (derived from its IPv4 one), and a
   * link-local caller by the MAC the neighbour table gives for it on `[dnsmasq] interface`.
   *
   * A view is a function of the instance's record and the configuration alone (the trees read
   * nothing else of the store; user-data, which does, is checked in userdata/renderer.ts). So a
   * change elsewhere in the store (in a cluster, any host's upload moves the generation) costs a
   * hit one lookup of the record: the view stays while the record found at its key is the same,
   * and is rebuilt when it changed, was deleted, or another instance took the address. Dropping
   * every view on each generation instead made an upload storm anywhere rebuild every VM's view
   * on every request, on every host.
   */
  lookup(ip: string): InstanceMetadata | undefined {
    const cfg = this.config();
    if (this.cachedFor !== cfg) {
      this.cache = new Map();
      this.cachedFor = cfg;
    }
    // A link-local address is cached by the MAC behind it, which can change (another VM, later).
    const key = this.cacheKey(ip, cfg);
    if (key === null) return undefined;
    const generation = this.store.generation;
    const hit = this.cache.get(key);
    if (hit?.generation === generation) return hit.view;
    const inst = this.find(key, cfg);
    if (!inst) {
      this.cache.delete(key);
      return undefined;
    }
    if (hit && sameInstance(hit.instance, inst)) {
      hit.generation = generation;
      return hit.view;
    }
    const view = metadataOf(instanceData(withIPv6(inst, cfg.dnsmasq.plan6), cfg), cfg);
    if (!hit && this.cache.size >= MAX_CACHED) this.cache = new Map();
    this.cache.set(key, { view, instance: inst, generation });
    return view;
  }

  /** The IPv4 address, or `mac <mac>` for a link-local caller; null when no instance can be behind it. */
  private cacheKey(ip: string, cfg: Config): string | null {
    if (net.isIPv4(ip)) return ip;
    const plan = cfg.dnsmasq.plan6;
    if (plan === null || !net.isIPv6(ip)) return null;
    if (isLinkLocal6(ip)) {
      const mac = this.neighbours6.macOf(ip, cfg.dnsmasq.interface);
      return mac === undefined ? null : `mac ${mac}`;
    }
    return ipv4ForIPv6(plan, ip);
  }

  private find(key: string, cfg: Config): Instance | undefined {
    if (!key.startsWith('mac ')) return this.store.byIPv4(key);
    const inst = this.store.byMac(key.slice(4));
    // An instance without an address in the network serves no one (as for IPv4 callers).
    return inst && withIPv6(inst, cfg.dnsmasq.plan6).ipv6 !== null ? inst : undefined;
  }

  /**
   * What must happen before `forCaller(ip)` can answer: for an IPv6 caller that is found, or
   * checked, through the neighbour table, a read of that table the caller may be in. Undefined
   * when there is nothing to wait for (IPv4, or a table that already knows the caller).
   */
  settle(ip: string): Promise<void> | undefined {
    const cfg = this.config();
    if (cfg.dnsmasq.plan6 === null || net.isIPv4(ip) || !net.isIPv6(ip)) return undefined;
    if (isLinkLocal6(ip)) return this.neighbours6.settle(ip, cfg.dnsmasq.interface);
    return cfg.mdserver.verifyMac ? this.neighbours6.settle(ip) : undefined;
  }

  /**
   * The metadata for a request from `ip`, for every path that serves instance data: an unknown
   * address is UNKNOWN_CLIENT (400); with `verify_mac`, an address whose MAC in the host's
   * neighbour table is not the instance's MAC is FORBIDDEN (403), so a VM that takes another
   * VM's address learns nothing about it; with `require_filter = yes`, so is an instance whose
   * interface has no trusted nwfilter.
   */
  forCaller(ip: string): InstanceMetadata {
    const found = this.lookup(ip);
    if (!found) throw new MdsError('UNKNOWN_CLIENT', `Unknown client: ${ip}`);
    const m = this.config().mdserver;
    // Without a trusted nwfilter another VM could copy this one's MAC and address and pass the
    // check below; require_filter = yes serves such an instance nothing (see isolation.ts).
    if (m.requireFilter === 'yes' && isWithheld(found.data.instance, m)) throw new MdsError('FORBIDDEN', WITHHELD_MESSAGE, { reason: 'unfiltered' });
    if (m.verifyMac) {
      const seen = this.macSeen(ip);
      if (seen !== found.data.mac) {
        // Debug: the refusal itself is logged at warning by the HTTP error handler, at most once a
        // minute per client; a VM asking in a loop must not write a warning per request here.
        log.debug('refused a caller whose MAC does not match the instance', {
          client: ip, instance: found.data.instance.name, expected: found.data.mac, seen: seen ?? 'none',
        });
        throw new MdsError('FORBIDDEN', `Forbidden: ${ip} is not using the MAC registered for it`, { reason: 'spoofing' });
      }
    }
    return found;
  }

  /**
   * The MAC the host sees behind `ip`, for verify_mac. A link-local caller was found by that MAC,
   * so the check is whether its address, when it is EUI-64 (the kernel's default), names the same
   * MAC: a VM that takes another VM's link-local address with its own MAC is refused.
   */
  private macSeen(ip: string): string | undefined {
    if (net.isIPv4(ip)) return this.neighbours.macOf(ip);
    const dev = this.config().dnsmasq.interface;
    const mac = this.neighbours6.macOf(ip, isLinkLocal6(ip) ? dev : undefined);
    if (!isLinkLocal6(ip)) return mac;
    const embedded = eui64Mac(ip);
    return embedded === null || embedded === mac ? mac : embedded;
  }
}
