/**
 * `tsx agent/packaging/build-agent-bin.ts`: bundles agent/main.ts into
 * dist/udpwatch-agent.js (npm run build), its first line starting node with
 * the agent's malloc and V8 settings (agent/process-settings.ts).
 */
import { build } from 'esbuild';
import { AGENT_SHEBANG } from '../process-settings.js';

await build({
  entryPoints: { 'udpwatch-agent': new URL('../main.ts', import.meta.url).pathname },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  outdir: new URL('../../dist', import.meta.url).pathname,
  logLevel: 'warning',
  banner: { js: AGENT_SHEBANG },
});
