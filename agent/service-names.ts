/**
 * Names the service a flow belongs to: a configured rule (by local port and
 * process) first; else the owning socket's recognizable name (systemd unit,
 * container, interpreted script or process, see process-identity.ts), with
 * `:<port>` added only when that name owns several listening ports; else,
 * with no owner known, `<process>:<port>`.
 */
import { DEFAULTS } from '../contract/resources.js';

/** One configured rule: a flow matches when every field it sets matches. */
export interface ServiceRule {
  name: string;
  port?: number;
  process?: string;
  /** Idle seconds after which a client of this service is no longer active. */
  timeoutSeconds?: number;
  /** Count 1 in N flows of this service (counters scaled by N). */
  sampleRate?: number;
}

/** What the flow table needs to know about a flow's service. */
export interface ServiceInfo {
  service: string;
  timeoutSeconds: number;
  sampleRate: number;
}

/** The owner of a flow's local socket, as the flow table knows it from /proc. */
export interface OwnerName {
  /** Its recognizable name. */
  name: string;
  /** The name owns several listening ports: the port tells its services apart. */
  shared: boolean;
}

/** Maps (local port, process name, owner when known) to service info. */
export type ServiceNamer = (
  localPort: number,
  process: string | undefined,
  owner?: OwnerName,
) => ServiceInfo;

/** Replaces characters a wire service name may not hold (spaces, controls). */
export function sanitizeName(text: string): string {
  const clean = text.replace(/[\s\u0000-\u001f]+/g, '_').slice(0, 100);
  return clean === '' ? 'unknown' : clean;
}

/** Builds a namer from rules (first match wins) and the default idle timeout. */
export function createServiceNamer(
  rules: readonly ServiceRule[],
  defaultTimeoutSeconds: number = DEFAULTS.activeWindowSeconds,
): ServiceNamer {
  const cache = new Map<string, ServiceInfo>();
  // The previous call's answer: a daemon's report names one socket row after row,
  // and answering it without a cache key keeps a string per row out of the heap.
  let last: {
    port: number;
    process?: string;
    owner?: string;
    shared?: boolean;
    info?: ServiceInfo;
  } = {
    port: -1,
  };
  return (localPort, process, owner) => {
    if (
      last.info !== undefined &&
      last.port === localPort &&
      last.process === process &&
      last.owner === owner?.name &&
      last.shared === owner?.shared
    )
      return last.info;
    const info = lookup(localPort, process, owner);
    last = { port: localPort, process, owner: owner?.name, shared: owner?.shared, info };
    return info;
  };

  function lookup(localPort: number, process: string | undefined, owner: OwnerName | undefined) {
    const cacheKey = `${localPort}|${process ?? ''}|${owner ? `${owner.shared}|${owner.name}` : ''}`;
    const hit = cache.get(cacheKey);
    if (hit) return hit;
    const rule = rules.find(
      (r) =>
        (r.port === undefined || r.port === localPort) &&
        (r.process === undefined || r.process === process),
    );
    const info: ServiceInfo = rule
      ? {
          service: rule.name,
          timeoutSeconds: rule.timeoutSeconds ?? defaultTimeoutSeconds,
          sampleRate: rule.sampleRate ?? 1,
        }
      : {
          service: owner
            ? owner.shared
              ? `${sanitizeName(owner.name)}:${localPort}`
              : sanitizeName(owner.name)
            : `${sanitizeName(process ?? 'unknown')}:${localPort}`,
          timeoutSeconds: defaultTimeoutSeconds,
          sampleRate: 1,
        };
    // Bounded: ports x processes on one host is small, but never trust it.
    if (cache.size > 10_000) cache.clear();
    cache.set(cacheKey, info);
    return info;
  }
}
