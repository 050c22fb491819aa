/** How the page words an agent's sources that are not live (no DOM: tested without a browser). */
import type { SourceState } from '../../contract/wire.js';

/** Every source that is not plainly live, with its state and the agent's reason. */
export function sourcesNotLive(a: { sourceStates?: readonly SourceState[] }): string {
  const off = (a.sourceStates ?? []).filter((s) => s.state !== 'live');
  return off.map((s) => `${s.source} ${s.state}${s.reason ? `: ${s.reason}` : ''}`).join('; ');
}
