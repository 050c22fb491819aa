import { describe, expect, it } from 'vitest';
import { formatRoute, parseRoute, type Route, viewKey } from '../../../ui/page/deep-link.js';

describe('the web view deep links', () => {
  it('reads back every route it writes, names with reserved characters included', () => {
    const routes: Route[] = [
      { view: 'services', q: '' },
      { view: 'services', q: 'dns', window: 3600 },
      { view: 'agents', window: 60 },
      { view: 'client', ip: '2001:db8::1' },
      {
        view: 'service',
        service: 'dns/a?b#c&d e',
        filter: '10.0.0.0/8 :53',
        sort: 'bytes',
        dir: 'asc',
        by: 'ip',
        window: 600,
      },
      {
        view: 'service',
        service: 'demo-echo',
        filter: '',
        sort: 'lastSeen',
        dir: 'desc',
        by: 'endpoint',
      },
    ];
    for (const r of routes) expect(parseRoute(formatRoute(r))).toEqual(r);
  });

  it('writes short links: defaults are left out', () => {
    expect(
      formatRoute({
        view: 'service',
        service: 'demo-echo',
        filter: '127.0.0.2',
        sort: 'lastSeen',
        dir: 'desc',
        by: 'endpoint',
      }),
    ).toBe('#/service/demo-echo?filter=127.0.0.2');
    expect(formatRoute({ view: 'services', q: '' })).toBe('#/');
  });

  it('falls back to defaults for values it does not know, and to the services view for unknown paths', () => {
    expect(parseRoute('#/service/x?sort=__proto__&dir=sideways&by=port&window=0x10')).toEqual({
      view: 'service',
      service: 'x',
      filter: '',
      sort: 'lastSeen',
      dir: 'desc',
      by: 'endpoint',
    });
    expect(parseRoute('#/service/x?window=604801')).not.toHaveProperty('window');
    expect(parseRoute('#/nowhere/x')).toEqual({ view: 'services', q: '' });
    expect(parseRoute('#/service/%E0%A4%A')).toEqual({ view: 'services', q: '' });
    expect(parseRoute('#/service/a/b')).toEqual({ view: 'services', q: '' });
    expect(parseRoute('')).toEqual({ view: 'services', q: '' });
  });

  it('keys one view by what needs a new request, not by filter or sort', () => {
    const base = parseRoute('#/service/dns');
    expect(viewKey(base)).toBe(viewKey(parseRoute('#/service/dns?filter=:53&sort=bytes')));
    expect(viewKey(base)).not.toBe(viewKey(parseRoute('#/service/dns?by=ip')));
    expect(viewKey(base)).not.toBe(viewKey(parseRoute('#/service/dns?window=60')));
  });
});
