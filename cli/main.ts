/**
 * Entry point of the `udpwatch` command: runs the command line and exits with
 * its code. The built package's bin (dist/udpwatch.js) is this file bundled.
 */
import { silenceSdkNodeNotice } from '../contract/node-support.js';
import { runCli } from './run-cli.js';

// The credential chain may create SDK clients (SSO, STS), which would print the SDK's notice.
silenceSdkNodeNotice();

// Piped into `head` and the pipe closed: stop quietly, as Unix tools do.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
