// Pure: vendor-data that turns on cloud-init's event reporting to mdserver, so that images report
// their boots without any change to their user-data (`[mdserver] report_events`). cloud-init
// merges vendor-data's cloud-config under the user's (user-data wins), and reads it in two forms:
// NoCloud's `vendor-data` is the text itself; OpenStack's `vendor_data.json` is JSON whose
// "cloud-init" key holds that text (sources/__init__.py, convert_vendordata).

import { yamlQuote } from './yaml.js';

/** A vendor-data file answered per request: the URL depends on the address the VM reached. */
export interface VendorDataNode {
  readonly deferred: 'vendor-data';
  readonly format: 'openstack' | 'nocloud';
  /** The administrator's own vendor-data file, as configured (`{}` or empty when unset). */
  readonly base: string;
}

/** The cloud-config that points cloud-init's webhook reporting at `url`. */
export function reportingCloudConfig(url: string): string {
  return `#cloud-config\nreporting:\n  mdserver: {type: webhook, endpoint: ${yamlQuote(url)}}\n`;
}

/**
 * The vendor-data to serve. An administrator's own file is served as it is when it already
 * carries cloud-init configuration (it would have to be merged as YAML, and its author may well
 * have left reporting out on purpose): add the `reporting` block to it by hand.
 */
export function vendorDataFor(node: VendorDataNode, url: string): string {
  if (node.format === 'nocloud') return node.base.trim() === '' ? reportingCloudConfig(url) : node.base;
  let parsed: unknown;
  try {
    parsed = JSON.parse(node.base);
  } catch {
    return node.base;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || 'cloud-init' in parsed) return node.base;
  return JSON.stringify({ ...(parsed as Record<string, unknown>), 'cloud-init': reportingCloudConfig(url) });
}
