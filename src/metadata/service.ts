// Finds the instance behind a source address and hands out its metadata, caching the derived
// trees until the database or the configuration changes.

import type { Config } from '../config/index.js';
import { MdsError } from '../errors.js';
import { moduleLogger } from '../log.js';
import { NeighbourTable } from '../net/neighbours.js';
import type { Store } from '../store/store.js';
import { ec2Tree } from './ec2.js';
import { instanceData, type InstanceData } from './instanceData.js';
import type { Dir } from './tree.js';

export interface ClientView {
  data: InstanceData;
  ec2: Dir;
}

const log = moduleLogger('metadata');

/** Bound on cached views; past it the cache starts over (cheap, and memory stays flat). */
const MAX_CACHED = 4096;

export class MetadataService {
  private cache = new Map<string, ClientView>();
  private generation = -1;

  constructor(
    private cfg: Config,
    private readonly store: Store,
    private readonly neighbours: NeighbourTable = new NeighbourTable(),
  ) {}

  setConfig(cfg: Config): void {
    this.cfg = cfg;
    this.cache = new Map();
  }

  config(): Config {
    return this.cfg;
  }

  /** The view for the instance whose address is `ip`, or undefined for an unknown client. */
  forAddress(ip: string): ClientView | undefined {
    if (this.generation !== this.store.generation) {
      this.cache = new Map();
      this.generation = this.store.generation;
    }
    const hit = this.cache.get(ip);
    if (hit) return hit;
    const inst = this.store.byIPv4(ip);
    if (!inst) return undefined;
    const data = instanceData(inst, this.cfg);
    const view = { data, ec2: ec2Tree(data, this.cfg) };
    if (this.cache.size >= MAX_CACHED) this.cache = new Map();
    this.cache.set(ip, view);
    return view;
  }

  /**
   * The view for a request from `ip`, for every path that serves instance data: an unknown
   * address is UNKNOWN_CLIENT (400); with `verify_mac`, an address whose MAC in the host's
   * neighbour table is not the instance's MAC is FORBIDDEN (403), so a VM that takes another
   * VM's address learns nothing about it.
   */
  caller(ip: string): ClientView {
    const view = this.forAddress(ip);
    if (!view) throw new MdsError('UNKNOWN_CLIENT', `Unknown client: ${ip}`);
    if (this.cfg.mdserver.verifyMac) {
      const seen = this.neighbours.macOf(ip);
      if (seen !== view.data.mac) {
        log.warn('refused a caller whose MAC does not match the instance', {
          client: ip, instance: view.data.instance.name, expected: view.data.mac, seen: seen ?? 'none',
        });
        throw new MdsError('FORBIDDEN', `Forbidden: ${ip} is not using the MAC registered for it`);
      }
    }
    return view;
  }
}
