/** Which services the API flags as having unobserved peers, from the stored agent heartbeats. */
import { describe, expect, it } from 'vitest';
import { AgentsResponse, ServicesResponse } from '../../../contract/api-schemas.js';
import { agentEntry, unobservedServices } from '../../../functions/query/answers.js';

const SINCE = 1_800_000_000_000;

describe('unobservedServices', () => {
  const agents = [
    {
      agentId: 'a1',
      host: 'dns-1',
      lastHeartbeat: SINCE + 5_000,
      unobserved: [
        { service: 'resolver', port: 53, reason: 'a NOTRACK rule exempts udp port 53' },
        // Not of the schema (port out of range): skipped, not trusted.
        { service: 'bogus', port: 70_000, reason: 'x' },
      ],
    },
    {
      agentId: 'a2',
      host: 'dns-2',
      lastHeartbeat: SINCE + 9_000,
      unobserved: [{ service: 'resolver', port: 53, reason: 'no firewall rule uses conntrack' }],
    },
    // Silent since before the window: its old flag no longer counts.
    {
      agentId: 'a3',
      host: 'old',
      lastHeartbeat: SINCE - 1,
      unobserved: [{ service: 'stale', port: 123, reason: 'no eBPF' }],
    },
  ];

  it('flags services of agents reporting in the window, with the first host and how many more', () => {
    const got = unobservedServices(agents, SINCE);
    expect([...got.keys()]).toEqual(['resolver']);
    expect(got.get('resolver')).toEqual({
      reason: 'dns-1: udp port 53: a NOTRACK rule exempts udp port 53 (and 1 more)',
      at: SINCE + 9_000,
    });
  });

  it('answers an agent’s source states and flags, dropping malformed ones', () => {
    const e = agentEntry(
      {
        agentId: 'a1',
        host: 'dns-1',
        lastHeartbeat: SINCE,
        sources: ['proc'],
        sourceStates: [
          { source: 'conntrack', state: 'blind', reason: 'no firewall rule uses conntrack' },
          { source: 'nonsense', state: 'live' },
        ],
        unobserved: agents[0]!.unobserved,
      },
      SINCE,
    );
    expect(e.sourceStates).toEqual([
      { source: 'conntrack', state: 'blind', reason: 'no firewall rule uses conntrack' },
    ]);
    expect(e.unobserved.map((u) => u.service)).toEqual(['resolver']);
    // An agent from before these fields answers empty lists.
    const old = agentEntry({ agentId: 'a0', host: 'h', lastHeartbeat: SINCE }, SINCE);
    expect([old.sourceStates, old.unobserved]).toEqual([[], []]);
  });
});

describe('answers of an API from before the unobserved fields', () => {
  it('still parse, as not unobserved and with no source states', () => {
    const at = { window: 300, since: SINCE, now: SINCE + 1 };
    const services = ServicesResponse.parse({
      ...at,
      services: [
        {
          service: 'dns',
          firstSeen: SINCE,
          lastSeen: SINCE,
          active: true,
          activeClients: 1,
          activeClientIps: 1,
          countsAt: SINCE,
        },
      ],
    });
    expect(services.services[0]!.peersUnobserved).toBe(false);
    const agents = AgentsResponse.parse({
      ...at,
      agents: [
        {
          agentId: 'a',
          host: 'h',
          lastHeartbeat: SINCE,
          reporting: true,
          flows: 0,
          dropped: 0,
          spooled: 0,
          sources: ['proc'],
        },
      ],
    });
    expect(agents.agents[0]).toMatchObject({ sourceStates: [], unobserved: [] });
  });
});
