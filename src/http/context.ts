// What the HTTP layer is given: the running services, never storage details.

import type { Config } from '../config/index.js';
import type { DnsmasqFiles } from '../dnsmasq/files.js';
import type { Registry } from '../instances/registry.js';
import type { MetadataService } from '../metadata/service.js';
import type { TokenIssuer } from '../metadata/token.js';
import type { RateLimiter } from './ratelimit.js';
import type { UserdataRenderer } from '../userdata/renderer.js';

export interface AppContext {
  /** The current configuration (it may be replaced by a reload). */
  config(): Config;
  metadata: MetadataService;
  registry: Registry;
  userdata: UserdataRenderer;
  tokens: TokenIssuer;
  dnsmasq: DnsmasqFiles;
  limiter: RateLimiter;
}
