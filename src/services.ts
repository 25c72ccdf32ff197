// The long-lived services of a running mdserver, built once by the composition root (server.ts)
// and handed to the HTTP and admin layers. Nothing here knows about HTTP.

import type { ConfigSource } from './config/index.js';
import type { DnsmasqFiles } from './dnsmasq/files.js';
import type { Passwords } from './instances/passwords.js';
import type { Registry } from './instances/registry.js';
import type { MetadataService } from './metadata/service.js';
import type { ListenerSet } from './net/listeners.js';
import type { ProvisioningTracker } from './provisioning/tracker.js';
import type { Metrics } from './metrics/metrics.js';
import type { TokenIssuer } from './metadata/token.js';
import type { RateLimiter } from './net/ratelimit.js';
import type { UserdataRenderer } from './userdata/renderer.js';

export interface Services {
  /** The configuration in force now; a reload replaces it, so read it per use, never keep it. */
  readonly config: ConfigSource;
  readonly metadata: MetadataService;
  readonly registry: Registry;
  readonly userdata: UserdataRenderer;
  readonly tokens: TokenIssuer;
  readonly dnsmasq: DnsmasqFiles;
  readonly limiter: RateLimiter;
  /** The listeners: the IPv4 metadata one, and the IPv6 and CloudStack ones, retried until bound. */
  readonly listeners: ListenerSet;
  /** Each instance's boots and the events its cloud-init posts. */
  readonly provisioning: ProvisioningTracker;
  /** Counters for `GET /metrics`; the parts count at their boundaries (doc/operations.md). */
  readonly metrics: Metrics;
  /** CloudStack's one-time passwords (`[cloudstack]`). */
  readonly passwords: Passwords;
}
