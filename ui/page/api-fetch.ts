/**
 * The page's requests to the HTTP API, relative to the page (the server that
 * serves the page answers or forwards `v1/...`). Error answers become an
 * ApiError carrying the problem document's detail, so the page can show it.
 */
import type {
  AgentsResponse,
  AlarmsResponse,
  ClientIpResponse,
  ClientsResponse,
  CountResponse,
  HistoryResponse,
  ServicesResponse,
} from '../../contract/api-schemas.js';

/** A failed request: what was asked and what the API (or the network) said. */
export class ApiError extends Error {
  constructor(
    readonly path: string,
    readonly status: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** A services entry, with the fields that say the agents cannot see a service's peers. */
export type ServiceRow = ServicesResponse['services'][number] & {
  peersUnobserved?: boolean;
  unobservedReason?: string;
};

/** Longest a request may take before the page reports it. */
const TIMEOUT_MS = 20_000;
/** Pages of clients one view follows at most (10,000 clients at 1,000 a page). */
export const MAX_CLIENT_PAGES = 10;

function message(status: number, statusText: string, text: string): string {
  try {
    const body = JSON.parse(text) as { title?: unknown; detail?: unknown; message?: unknown };
    if (typeof body.detail === 'string') {
      const title = typeof body.title === 'string' ? body.title : statusText;
      return `${status} ${title}: ${body.detail}`;
    }
    // API Gateway's own refusals (signature, throttling) are {"message": "..."}.
    if (typeof body.message === 'string') return `${status} ${statusText}: ${body.message}`;
  } catch {
    // not JSON: fall through to the text itself
  }
  return `${status} ${statusText}: ${text.slice(0, 200) || '(empty body)'}`;
}

/** GETs an API path (segments encoded) with query parameters and returns its JSON. */
export async function getJson<T>(
  path: string,
  query: Record<string, string | number | undefined> = {},
): Promise<T> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  const url = `${path}${qs ? `?${qs}` : ''}`;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    text = await res.text();
  } catch (err) {
    const why = err instanceof Error && err.name === 'TimeoutError' ? 'no answer in time' : err;
    throw new ApiError(path, undefined, `cannot reach the API (${String(why)})`);
  }
  if (!res.ok) throw new ApiError(path, res.status, message(res.status, res.statusText, text));
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(path, res.status, `the answer is not JSON: ${text.slice(0, 80)}`);
  }
}

const seg = encodeURIComponent;

/** GET v1/services */
export const services = (window?: number) =>
  getJson<ServicesResponse & { services: ServiceRow[] }>('v1/services', { window });

/** GET v1/services/{service}/count */
export const count = (service: string, window?: number) =>
  getJson<CountResponse>(`v1/services/${seg(service)}/count`, { window });

/** Every page of a service's clients, up to MAX_CLIENT_PAGES; `complete` false when cut short. */
export async function allClients(
  service: string,
  by: 'endpoint' | 'ip',
  window?: number,
): Promise<{ first: ClientsResponse; clients: ClientsResponse['clients']; complete: boolean }> {
  const path = `v1/services/${seg(service)}/clients`;
  const first = await getJson<ClientsResponse>(path, { by, window, limit: 1000 });
  const clients = [...first.clients];
  let cursor = first.nextCursor;
  for (let n = 1; cursor && n < MAX_CLIENT_PAGES; n++) {
    const next = await getJson<ClientsResponse>(path, { by, window, limit: 1000, cursor });
    clients.push(...next.clients);
    cursor = next.nextCursor;
  }
  return { first, clients, complete: cursor === null };
}

/** GET v1/clients/{ip} */
export const clientIp = (ip: string, window?: number) =>
  getJson<ClientIpResponse>(`v1/clients/${seg(ip)}`, { window, limit: 1000 });

/** GET v1/agents */
export const agents = (window?: number) => getJson<AgentsResponse>('v1/agents', { window });

/** GET v1/services/{service}/history: the stored per-minute counts of the last `minutes`. */
export const history = (service: string, minutes = 60) =>
  getJson<HistoryResponse>(`v1/services/${seg(service)}/history`, { minutes });

/** GET v1/alarms, of one service or all. */
export const alarms = (service?: string) => getJson<AlarmsResponse>('v1/alarms', { service });
