/** The services list is written at most once per refresh step per instance and service. */
import { describe, expect, it } from 'vitest';
import { ServiceRefresh } from '../../../functions/aggregate/service-refresh.js';

describe('ServiceRefresh', () => {
  it('lets a service write again only after lastSeen moved by the refresh step', () => {
    const r = new ServiceRefresh(30_000);
    expect(r.due('dns', 1_000)).toBe(true);
    r.wrote('dns', 1_000);
    expect(r.due('dns', 1_000)).toBe(false);
    expect(r.due('dns', 30_999)).toBe(false);
    expect(r.due('dns', 31_000)).toBe(true);
    expect(r.due('ntp', 1_000)).toBe(true);
    // An older write never moves the mark back.
    r.wrote('dns', 500);
    expect(r.due('dns', 30_999)).toBe(false);
  });
});
