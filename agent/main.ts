/**
 * Entry point of `udpwatch-agent`: runs the command line and exits with its
 * code. The built package's bin (dist/udpwatch-agent.js) is this file bundled.
 */
import { nodeSupportNotice, silenceSdkNodeNotice } from '../contract/node-support.js';
import { main } from './cli.js';

const args = process.argv.slice(2);
silenceSdkNodeNotice();
// Said once, when the long-running agent starts, where an operator reads it.
const notice =
  args[0] === 'run' && !args.includes('--help') && !args.includes('-h')
    ? nodeSupportNotice(process.version)
    : null;
if (notice !== null) {
  process.stderr.write(`${new Date().toISOString()} udpwatch-agent: ${notice}\n`);
}
process.exitCode = await main(args);
