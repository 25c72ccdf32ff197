// Pure: whether an instance's interface on the metadata network carries an nwfilter the host
// trusts to stop MAC, IP and ARP spoofing, and what `[mdserver] require_filter` makes of it.
//
// mdserver finds a VM by the source address of its request and, with verify_mac, by the MAC the
// neighbour table shows for it. A VM that copies another VM's MAC and address as well matches
// both, so only the host's layer-2 filter can keep it out: libvirt's clean-traffic nwfilter
// drops frames whose source MAC, IP or ARP data are not the interface's own. mdserver cannot see
// the filter at work; it sees the `<filterref>` in the domain XML libvirt applies it from.

import type { FilterPolicy } from '../config/settings.js';
import type { Instance } from '../store/store.js';

export interface FilterSettings {
  readonly requireFilter: FilterPolicy;
  readonly trustedFilters: readonly string[];
}

/** Why the instance is not known to be filtered, or null when its filter is trusted. */
export function filterProblem(inst: Pick<Instance, 'nwfilter'>, s: FilterSettings): string | null {
  if (inst.nwfilter === null) return 'its interface on the metadata network has no nwfilter';
  if (!s.trustedFilters.includes(inst.nwfilter)) {
    return `its nwfilter "${inst.nwfilter}" is not in trusted_filters (${s.trustedFilters.join(' ') || 'none'})`;
  }
  return null;
}

/** Whether instance data is withheld from the instance (require_filter = yes, no trusted filter). */
export function isWithheld(inst: Pick<Instance, 'nwfilter'>, s: FilterSettings): boolean {
  return s.requireFilter === 'yes' && filterProblem(inst, s) !== null;
}

/** The refusal a VM gets: the reason, without naming the instance to whoever holds its address. */
export const WITHHELD_MESSAGE =
  "Forbidden: this instance's interface carries no trusted nwfilter (such as clean-traffic), and require_filter = yes " +
  'serves no instance data without one';

/** What the upload reply adds for a registered instance, or null when there is nothing to say. */
export function uploadNote(inst: Pick<Instance, 'name' | 'nwfilter'>, s: FilterSettings): string | null {
  const problem = s.requireFilter === 'yes' ? filterProblem(inst, s) : null;
  if (problem === null) return null;
  return `refused: ${inst.name} will be served no instance data (require_filter = yes): ${problem}; ` +
    "add <filterref filter='clean-traffic'/> to it (mdserver sysinfo --filter --apply) and define the domain again";
}

/** One line for `mdserver status` about the instances without a trusted filter, or null. */
export function unfilteredSummary(instances: readonly Pick<Instance, 'name' | 'nwfilter'>[], s: FilterSettings): string | null {
  if (s.requireFilter === 'no') return null;
  const names = instances.filter((i) => filterProblem(i, s) !== null).map((i) => i.name);
  if (names.length === 0) return null;
  const shown = names.slice(0, 10).join(', ') + (names.length > 10 ? `, and ${names.length - 10} more` : '');
  const effect = s.requireFilter === 'yes' ? 'are served no instance data' : 'can be impersonated by a VM that copies their MAC and address';
  return `${names.length} instance(s) without a trusted nwfilter ${effect} (require_filter = ${s.requireFilter}): ${shown}`;
}

/** Bound on remembered warnings; past it they start over (a repeat warning is harmless). */
const MAX_REMEMBERED = 100_000;

/**
 * Says once per instance (per uuid and filter, for the life of the process) that it has no
 * trusted filter, so that the hook's upload at every VM start does not repeat it.
 */
export class UnfilteredWarnings {
  private readonly said = new Set<string>();

  /** The problem to log for `inst` now, or null when there is none or it was said already. */
  check(inst: Pick<Instance, 'uuid' | 'nwfilter'>, s: FilterSettings): string | null {
    if (s.requireFilter === 'no') return null;
    const problem = filterProblem(inst, s);
    const key = `${inst.uuid} ${inst.nwfilter ?? ''}`;
    if (problem === null || this.said.has(key)) return null;
    if (this.said.size >= MAX_REMEMBERED) this.said.clear();
    this.said.add(key);
    return problem;
  }
}
