// Finds the instance behind a source address and hands out its metadata, caching the derived
// trees until the database or the configuration changes.

import type { Config, ConfigSource } from '../config/index.js';
import { MdsError } from '../errors.js';
import { moduleLogger } from '../log.js';
import { NeighbourTable } from '../net/neighbours.js';
import type { Store } from '../store/store.js';
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

export class MetadataService {
  private cache = new Map<string, InstanceMetadata>();
  private generation = -1;
  /** The configuration the cached views were built with. */
  private cachedFor: Config | null = null;

  constructor(
    private readonly config: ConfigSource,
    private readonly store: Store,
    private readonly neighbours: NeighbourTable = new NeighbourTable(),
  ) {}

  /** The metadata of the instance whose address is `ip`, or undefined for an unknown client. */
  lookup(ip: string): InstanceMetadata | undefined {
    const cfg = this.config();
    if (this.generation !== this.store.generation || this.cachedFor !== cfg) {
      this.cache = new Map();
      this.generation = this.store.generation;
      this.cachedFor = cfg;
    }
    const hit = this.cache.get(ip);
    if (hit) return hit;
    const inst = this.store.byIPv4(ip);
    if (!inst) return undefined;
    const data = instanceData(inst, cfg);
    const v = metadataOf(data, cfg);
    if (this.cache.size >= MAX_CACHED) this.cache = new Map();
    this.cache.set(ip, v);
    return v;
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
      const seen = this.neighbours.macOf(ip);
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
}
