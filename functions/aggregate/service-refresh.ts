/**
 * Rate limit for writes to the services list. Every batch sees the services
 * of its blocks, and all service items live under one partition key;
 * with many shards and invocations that key would run hot. An instance
 * therefore moves a service's lastSeen only when it advances by at least
 * SERVICE_REFRESH_MS over what this instance last wrote, so the services list
 * is at most that stale (far below the active window) and costs a bounded
 * number of writes per instance and service.
 */

/** Granularity of a service's lastSeen in the services list. */
export const SERVICE_REFRESH_MS = 60_000;

/** What one function instance last wrote per service. */
export class ServiceRefresh {
  private readonly written = new Map<string, number>();

  constructor(private readonly refreshMs = SERVICE_REFRESH_MS) {}

  /** Whether a batch that saw `service` until `lastSeen` needs to write its item. */
  due(service: string, lastSeen: number): boolean {
    const last = this.written.get(service);
    return last === undefined || lastSeen >= last + this.refreshMs;
  }

  /** Records a successful write. */
  wrote(service: string, lastSeen: number): void {
    this.written.set(service, Math.max(lastSeen, this.written.get(service) ?? lastSeen));
  }
}
