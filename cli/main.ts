/** Entry point of the `udpwatch` command: runs the command line and exits with its code. */
import { runCli } from './run-cli.js';

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
