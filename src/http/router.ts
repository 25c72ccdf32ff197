// Pure: which route answers a path, and with which methods. Routes name exact paths or the first
// segment of the paths they answer; some depend on the configuration (the EC2 versions, the
// OpenStack and NoCloud switches), so the lookup maps are rebuilt when the configuration object
// changes (a reload), never per request.

/** The methods a route may declare; declaring GET answers HEAD as well. */
export type Method = 'GET' | 'PUT' | 'POST';

export interface RouteSpec<C> {
  /** Exact paths, as requested with doubled slashes collapsed. */
  readonly paths?: readonly string[];
  /** First path segments (decoded) under which the route answers every path, or where they come from. */
  readonly prefixes?: readonly string[] | ((c: C) => readonly string[]);
  /** Whether the route is on; a route that is off is as if it were not in the table. */
  readonly enabled?: (c: C) => boolean;
  readonly methods: readonly Method[];
}

interface Maps<C, R> {
  readonly config: C;
  readonly exact: ReadonlyMap<string, R>;
  readonly prefix: ReadonlyMap<string, R>;
}

export class RouteTable<C, R extends RouteSpec<C>> {
  private maps: Maps<C, R> | undefined;

  constructor(private readonly routes: readonly R[]) {}

  /** The route for an exact path. */
  byPath(path: string, config: C): R | undefined {
    return this.current(config).exact.get(path);
  }

  /** The route for the paths under a first segment. */
  byPrefix(first: string | undefined, config: C): R | undefined {
    return first === undefined ? undefined : this.current(config).prefix.get(first);
  }

  private current(config: C): Maps<C, R> {
    if (this.maps?.config !== config) this.maps = build(this.routes, config);
    return this.maps;
  }
}

/** Where two routes claim the same path or segment, the earlier in the table wins. */
function build<C, R extends RouteSpec<C>>(routes: readonly R[], config: C): Maps<C, R> {
  const exact = new Map<string, R>();
  const prefix = new Map<string, R>();
  for (const r of routes) {
    if (r.enabled && !r.enabled(config)) continue;
    for (const p of r.paths ?? []) if (!exact.has(p)) exact.set(p, r);
    const firsts = typeof r.prefixes === 'function' ? r.prefixes(config) : (r.prefixes ?? []);
    for (const s of firsts) if (!prefix.has(s)) prefix.set(s, r);
  }
  return { config, exact, prefix };
}

/** Whether `methods` answer `method`; HEAD is answered wherever GET is (Node leaves out the body). */
export function allows(methods: readonly Method[], method: string): boolean {
  return (methods as readonly string[]).includes(method) || (method === 'HEAD' && methods.includes('GET'));
}

/** The `Allow` header of a 405 for `methods`. */
export function allowHeader(methods: readonly Method[]): string {
  return methods.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m])).join(', ');
}
