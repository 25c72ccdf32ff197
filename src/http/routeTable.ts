// The public app's routes: for each, the paths it answers, its methods, who may call it and its
// handler. The dispatcher (app.ts) does the checks these declare, in one place, for every route.

import type { Request, Response } from 'express';
import type { ServerResponse } from 'node:http';
import type { Asked } from './asked.js';
import type { Config } from '../config/index.js';
import { NOCLOUD_PREFIX } from '../metadata/nocloud.js';
import type { InstanceMetadata } from '../metadata/service.js';
import type { Services } from '../services.js';
import type { RouteSpec } from './router.js';
import { ec2Handler, ec2VersionsHandler } from './routes/ec2.js';
import { HEALTH_PATH, healthHandler } from './routes/health.js';
import { METRICS_PATH, metricsHandler } from './routes/metrics.js';
import { nocloudHandler } from './routes/nocloud.js';
import { openstackHandler, openstackVersionsHandler } from './routes/openstack.js';
import { CONFIGURATION_PATH, configurationHandler, serviceHandler } from './routes/service.js';
import { TOKEN_PATH, tokenHandler } from './routes/token.js';
import { UPLOAD_PATH, uploadHandler } from './routes/upload.js';
import { cloudInitEventsHandler, EVENTS_PATH } from './routes/cloudInitEvents.js';

/**
 * `segs` are the request path's decoded segments, empty for routes matched by exact path. An
 * instance's routes are given Node's own request and response: a metadata GET is answered before
 * Express (app.ts), so they use none of Express's additions.
 */
type ForInstance = (req: Asked, res: ServerResponse, segs: readonly string[], found: InstanceMetadata) => void | Promise<void>;
type ForAddress = (req: Request, res: Response, segs: readonly string[], client: string) => void | Promise<void>;

export type Route = RouteSpec<Config> & {
  /** `[mdserver] imds_tokens` applies, checked before the caller is looked up (EC2 paths only). */
  readonly imdsToken?: boolean;
  /** With `imds_tokens = required`, the header `Metadata: true` is needed (OpenStack, NoCloud). */
  readonly metadataHeader?: boolean;
  /**
   * A request carrying a proxy's headers is refused (403). Always so for instance and host
   * routes; for a route anyone may call, only where this is set (the token PUT).
   */
  readonly refuseForwarded?: boolean;
  /** With `[mdserver] upload_token_file` set, the request must carry its token (the upload). */
  readonly uploadToken?: boolean;
  /** The 405 message where a hint helps; otherwise it names the method refused. */
  readonly notAllowed?: string;
} & (
  /** A registered instance, found by its source address (and MAC, with `verify_mac`). */
  | { readonly who: 'instance'; readonly handler: ForInstance }
  /** The host itself (see client.ts), or any caller at all. */
  | { readonly who: 'host' | 'anyone'; readonly handler: ForAddress }
);

const GET = ['GET'] as const;
const openstackOn = (c: Config): boolean => c.openstack.enabled;

/**
 * Exact paths are matched before first segments. The EC2 versions come last: a version that is
 * also the name of another route's segment stays with that route.
 */
export function publicRoutes(services: Services): Route[] {
  return [
    { paths: [TOKEN_PATH], methods: ['PUT'], who: 'anyone', refuseForwarded: true, handler: tokenHandler(services),
      notAllowed: 'Method not allowed: use PUT to get a token' },
    { paths: [UPLOAD_PATH], methods: ['POST'], who: 'host', uploadToken: true, handler: uploadHandler(services),
      notAllowed: 'Method not allowed: use POST' },
    { paths: [EVENTS_PATH], methods: ['POST'], who: 'instance', handler: cloudInitEventsHandler(services), notAllowed: 'Method not allowed: use POST' },
    { paths: [HEALTH_PATH], methods: GET, who: 'host', handler: healthHandler(services) },
    { paths: [METRICS_PATH], methods: GET, who: 'host', handler: metricsHandler(services.metrics, () => services.config().mdserver.metrics) },
    { paths: [CONFIGURATION_PATH, `${CONFIGURATION_PATH}/`], methods: GET, who: 'host', handler: configurationHandler(services) },
    { prefixes: ['service'], methods: GET, who: 'anyone', handler: serviceHandler(services) },
    { paths: ['/openstack', '/openstack/'], enabled: openstackOn, methods: GET, who: 'anyone', handler: openstackVersionsHandler },
    { prefixes: ['openstack'], enabled: openstackOn, methods: GET, who: 'instance', metadataHeader: true, handler: openstackHandler(services) },
    { prefixes: [NOCLOUD_PREFIX.slice(1, -1)], enabled: (c) => c.nocloud.enabled, methods: GET, who: 'instance', metadataHeader: true,
      handler: nocloudHandler(services) },
    { paths: ['/'], methods: GET, who: 'anyone', imdsToken: true, handler: ec2VersionsHandler(services) },
    { prefixes: (c) => c.service.ec2Versions, methods: GET, who: 'instance', imdsToken: true, handler: ec2Handler(services) },
  ];
}
