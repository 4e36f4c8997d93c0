/**
 * The contract's paths, compiled once at start-up into one lookup: a map for the paths without parameters and one
 * regular expression per templated path. Matching follows Express's defaults, which the contract's validator uses
 * too (case-insensitive, an optional trailing slash, a parameter is one non-empty segment), so what authorization
 * guards is what the validator later checks. HEAD falls back to GET, as in Express.
 */

const METHODS = ['get', 'head', 'post', 'put', 'delete', 'patch'] as const;
type Method = (typeof METHODS)[number];

export interface ContractPaths<O> {
  paths: Record<string, Partial<Record<Method, O>> & Record<string, unknown>>;
}

export interface RouteMatch<O> {
  operation: O;
  /** A HEAD the path declares no HEAD for, answered by its GET (RFC 9110 section 9.3.2: GET without the body). */
  headAsGet: boolean;
  /** The path's parameters, percent-decoded (left as sent when they do not decode). */
  params: Record<string, string>;
}

interface Templated<O> {
  pattern: RegExp;
  names: string[];
  methods: Partial<Record<Method, O>>;
}

export class RouteTable<O> {
  private readonly exact = new Map<string, Partial<Record<Method, O>>>();
  private readonly templated: Templated<O>[] = [];

  constructor(contract: ContractPaths<O>) {
    for (const [path, item] of Object.entries(contract.paths)) {
      const methods: Partial<Record<Method, O>> = {};
      for (const method of METHODS) if (item[method]) methods[method] = item[method];
      if (!path.includes('{')) {
        // The first path the contract lists wins, as Express's first matching route does.
        if (!this.exact.has(path.toLowerCase())) this.exact.set(path.toLowerCase(), methods);
        continue;
      }
      const names: string[] = [];
      const source = path
        .split(/(\{\w+\})/)
        .map((part) => {
          const name = /^\{(\w+)\}$/.exec(part)?.[1];
          if (name === undefined) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          names.push(name);
          return '([^/]+?)';
        })
        .join('');
      this.templated.push({ pattern: new RegExp(`^${source}/?$`, 'i'), names, methods });
    }
  }

  /**
   * Every operation `method` (upper or lower case) names at a path pattern `path` (no query) fits, the contract's
   * first first: a router that orders its routes differently picks one of these, so whatever guards a request must
   * pass all of them.
   */
  matchAll(method: string, path: string): RouteMatch<O>[] {
    const verb = method.toLowerCase() as Method;
    const found: RouteMatch<O>[] = [];
    const key = (path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path).toLowerCase();
    const exact = this.exact.get(key);
    const operation = exact && pick(exact, verb);
    if (operation) found.push({ operation, params: {}, headAsGet: verb === 'head' && !exact.head });
    for (const route of this.templated) {
      const operation = pick(route.methods, verb);
      if (!operation) continue;
      const values = route.pattern.exec(path);
      if (!values) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => (params[name] = decode(values[i + 1]!)));
      found.push({ operation, params, headAsGet: verb === 'head' && !route.methods.head });
    }
    return found;
  }
}

function pick<O>(methods: Partial<Record<Method, O>>, verb: Method): O | undefined {
  return methods[verb] ?? (verb === 'head' ? methods.get : undefined);
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * A request's path as the contract's validator matches it: the request target as sent, up to the query (what
 * express-openapi-validator reads, `req.originalUrl` up to `?`). Not `req.path`, which Express takes from a different
 * parse of the same target (one holding `#` is cut there).
 */
export function requestPath(req: { originalUrl: string }): string {
  const url = req.originalUrl;
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

interface ValidatorMatch {
  openapi?: { schema?: { operationId?: string }; pathParams?: Record<string, string> };
}

/** The operationId the contract's validator matched this request to, if it did. */
export function matchedOperationId(req: object): string | undefined {
  return (req as ValidatorMatch).openapi?.schema?.operationId;
}

/** The path parameters the contract's validator matched (and checked). */
export function matchedParams(req: object): Record<string, string> {
  return (req as ValidatorMatch).openapi?.pathParams ?? {};
}
