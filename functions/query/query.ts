/**
 * The query function's work: route an API Gateway HTTP API (payload 2.0)
 * request, validate it, run it, and answer JSON or a problem document.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { PROBLEM_CONTENT_TYPE, quoteValue } from '../../contract/api-schemas.js';
import { buildOpenApi } from './openapi.js';
import { badRequest, HttpProblem, problemFromZod, shownName } from './problem.js';
import { matchPath, ROUTES, type Route, type RouteDeps } from './routes.js';

/** What request handling needs from its surroundings. */
export interface QueryDeps extends RouteDeps {
  logger: Logger;
  /** Clock, epoch ms (tests pin it). */
  now?: () => number;
}

const OPENAPI_PATH = '/v1/openapi.json';
/** Built on first request: it depends only on the route table. */
let openApi: Record<string, unknown> | undefined;

function json(
  status: number,
  body: unknown,
  contentType = 'application/json',
): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: status,
    headers: { 'content-type': contentType, 'cache-control': 'no-store' },
    body: JSON.stringify(body),
  };
}

function decodeSegment(name: string, raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badRequest(name, `${name}: not valid percent-encoding`);
  }
}

/**
 * The query parameters as a prototype-free record, so that every name the
 * client sent, `__proto__` and `constructor` included, is an own key the
 * strict query schema sees (a plain object would drop `__proto__` on
 * assignment). A parameter given more than once is refused: API Gateway joins
 * repeats with commas, which no parameter takes.
 */
function queryParameters(event: APIGatewayProxyEventV2): Record<string, string> {
  const given = event.queryStringParameters ?? {};
  const out = Object.create(null) as Record<string, string>;
  for (const name of Object.keys(given)) {
    const value = given[name];
    if (value !== undefined) out[name] = value;
  }
  // The raw string tells a repeat from a single value holding an encoded comma.
  const seen = new Set<string>();
  for (const [name] of new URLSearchParams(event.rawQueryString ?? '')) {
    if (seen.has(name)) throw badRequest(name, `${shownName(name)}: given more than once`);
    seen.add(name);
  }
  for (const name of Object.keys(out)) {
    if (out[name]!.includes(',')) {
      throw badRequest(
        name,
        `${shownName(name)}: ${quoteValue(out[name])} holds a comma: give the parameter once, with one value`,
      );
    }
  }
  return out;
}

/** Validates a matched route's path and query parameters. */
function validate(route: Route, rawParams: Record<string, string>, event: APIGatewayProxyEventV2) {
  const params: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(route.pathParams)) {
    const parsed = schema.safeParse(decodeSegment(name, rawParams[name] ?? ''));
    if (!parsed.success) throw problemFromZod(parsed.error, name);
    params[name] = parsed.data;
  }
  const parsed = route.query.safeParse(queryParameters(event));
  if (!parsed.success) throw problemFromZod(parsed.error);
  return { params, query: parsed.data };
}

/** Answers one request. */
export async function handleRequest(
  event: APIGatewayProxyEventV2,
  deps: QueryDeps,
): Promise<APIGatewayProxyStructuredResultV2> {
  const method = event.requestContext?.http?.method ?? 'GET';
  const path = event.rawPath ?? '/';
  try {
    const isOpenApi = path.replace(/\/+$/, '') === OPENAPI_PATH;
    const matched = isOpenApi
      ? undefined
      : ROUTES.map((r) => ({ r, params: matchPath(r.path, path) })).find((m) => m.params !== null);
    if (!isOpenApi && !matched) {
      throw new HttpProblem(404, 'Not Found', `no route for ${path}; see ${OPENAPI_PATH}`);
    }
    if (method !== 'GET' && method !== 'HEAD') {
      const problem = new HttpProblem(
        405,
        'Method Not Allowed',
        `${method} is not allowed on ${path}; use GET`,
      );
      const answer = json(405, problem.toBody(), PROBLEM_CONTENT_TYPE);
      return { ...answer, headers: { ...answer.headers, allow: 'GET' } };
    }
    if (isOpenApi) {
      openApi ??= buildOpenApi(ROUTES);
      return json(200, openApi);
    }
    const { r, params } = matched!;
    const input = validate(r, params!, event);
    const body = await r.run({ ...input, deps, now: (deps.now ?? Date.now)() });
    return json(200, body);
  } catch (err) {
    if (err instanceof HttpProblem) return json(err.status, err.toBody(), PROBLEM_CONTENT_TYPE);
    deps.logger.error('request failed', { method, path, error: err as Error });
    const problem = new HttpProblem(
      500,
      'Internal Server Error',
      'the request failed; retry later',
    );
    return json(500, problem.toBody(), PROBLEM_CONTENT_TYPE);
  }
}
