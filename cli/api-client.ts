/**
 * A typed client of the udpwatch HTTP API. Answers are parsed with the API's
 * own response schemas; failures become CLI errors with their exit codes.
 */
import type { z } from 'zod';
import {
  AgentsResponse,
  ClientIpResponse,
  ClientsResponse,
  CountResponse,
  HostClientsResponse,
  Problem,
  ServicesResponse,
} from '../contract/api-schemas.js';
import { ApiProblemError, ApiUnreachableError, BadAnswerError, CliError } from './cli-errors.js';
import { type FetchLike, isLoopbackHost } from './sigv4-fetch.js';

/** Where the API is and how to reach it. */
export interface ApiClientOptions {
  baseUrl: string;
  fetch?: FetchLike;
  /** Give up on a request after this long (default 15 s); counts as unreachable. */
  timeoutMs?: number;
}

/** An answer: the JSON exactly as the API sent it, and the same parsed by its schema. */
export interface Answer<T> {
  body: unknown;
  data: T;
}

type QueryValue = string | number | undefined;

/** Percent-encodes like RFC 3986 (and like SigV4's canonical form), so what is sent is what is signed. */
function strictEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Parameters shared by the listing routes. */
export interface ListParams {
  window?: number;
  limit?: number;
  cursor?: string;
}

/** The HTTP API's routes as methods. */
export class ApiClient {
  private readonly base: URL;
  private readonly fetch: FetchLike;
  private readonly timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.base = new URL(options.baseUrl);
    this.fetch = options.fetch ?? fetch;
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  /** The full URL of a route path (segments already encoded) with its query. */
  url(path: string, query: Record<string, QueryValue> = {}): string {
    const prefix = this.base.pathname.replace(/\/+$/, '');
    const params = Object.entries(query)
      .filter((e): e is [string, string | number] => e[1] !== undefined)
      .map(([k, v]) => `${strictEncode(k)}=${strictEncode(String(v))}`)
      .join('&');
    return `${this.base.origin}${prefix}${path}${params ? `?${params}` : ''}`;
  }

  /** GETs a route and parses its answer with `schema`. */
  async get<S extends z.ZodType>(
    path: string,
    query: Record<string, QueryValue>,
    schema: S,
  ): Promise<Answer<z.output<S>>> {
    const url = this.url(path, query);
    let response: Response;
    let text: string;
    try {
      response = await this.fetch(url, {
        method: 'GET',
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new ApiUnreachableError(url, reasonOf(err), isLoopbackHost(this.base.hostname));
    }
    if (!response.ok) throw problemOf(response, text, url);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new BadAnswerError(url, `not JSON: ${JSON.stringify(text.slice(0, 80))}`);
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new BadAnswerError(url, `${issue?.path.join('.') || 'body'}: ${issue?.message}`);
    }
    return { body, data: parsed.data };
  }

  /** GET /v1/services */
  services(window?: number) {
    return this.get('/v1/services', { window }, ServicesResponse);
  }

  /** GET /v1/services/{service}/clients */
  clients(service: string, params: ListParams & { by?: 'ip' | 'endpoint' } = {}) {
    const { window, by, limit, cursor } = params;
    return this.get(
      `/v1/services/${strictEncode(service)}/clients`,
      { window, by, limit, cursor },
      ClientsResponse,
    );
  }

  /** GET /v1/services/{service}/count */
  count(service: string, window?: number) {
    return this.get(`/v1/services/${strictEncode(service)}/count`, { window }, CountResponse);
  }

  /** GET /v1/clients/{ip} */
  clientIp(ip: string, params: { window?: number; limit?: number } = {}) {
    return this.get(`/v1/clients/${strictEncode(ip)}`, params, ClientIpResponse);
  }

  /** GET /v1/hosts/{host}/clients */
  hostClients(host: string, params: ListParams = {}) {
    const { window, limit, cursor } = params;
    return this.get(
      `/v1/hosts/${strictEncode(host)}/clients`,
      { window, limit, cursor },
      HostClientsResponse,
    );
  }

  /** GET /v1/agents */
  agents(window?: number) {
    return this.get('/v1/agents', { window }, AgentsResponse);
  }
}

/** Why fetch failed, as specific as Node tells it (ECONNREFUSED, ENOTFOUND, timeout). */
function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'no answer in time';
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code) return cause.code;
    if (cause?.message) return cause.message;
    return err.message;
  }
  return String(err);
}

/** The error an error answer stands for: its problem document if it has one, else its status. */
function problemOf(response: Response, text: string, url: string): ApiProblemError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const problem = Problem.safeParse(json);
  if (problem.success) {
    const p = problem.data;
    return new ApiProblemError(response.status, p.title, p.detail, p.parameter, url);
  }
  // API Gateway's own answers (e.g. a missing or bad signature) are `{"message": "..."}`.
  const message =
    typeof json === 'object' &&
    json !== null &&
    typeof (json as { message?: unknown }).message === 'string'
      ? (json as { message: string }).message
      : text.slice(0, 200) || '(empty body)';
  return new ApiProblemError(
    response.status,
    response.statusText || 'Error',
    message,
    undefined,
    url,
  );
}
