/** The CLI's failures, each with the exit code a script can act on. */

/** Exit codes: 0 success, then one per kind of failure. */
export const EXIT = {
  ok: 0,
  /** A bad flag, argument or command. */
  usage: 2,
  /** The API could not be reached at all. */
  unreachable: 3,
  /** The API refused the request (4xx). */
  rejected: 4,
  /** The API failed (5xx) or answered something unexpected. */
  failed: 5,
} as const;

/** A failure the CLI reports in one message and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Bad usage: names the flag or argument at fault. */
export class UsageError extends CliError {
  constructor(
    message: string,
    /** The command whose usage to hint at, if any. */
    readonly command?: string,
  ) {
    super(message, EXIT.usage);
  }
}

/** The API did not answer (refused, unresolvable, timed out). */
export class ApiUnreachableError extends CliError {
  constructor(
    readonly url: string,
    reason: string,
    isLocal: boolean,
  ) {
    const hint = isLocal
      ? '\nIs the local stack running? Start it with `npm start` or point --api / UDPWATCH_API elsewhere.'
      : '\nCheck the URL given with --api or UDPWATCH_API, and your network.';
    super(`cannot reach the udpwatch API at ${url}: ${reason}${hint}`, EXIT.unreachable);
  }
}

/** The API answered with an error status; `detail` and `parameter` come from its problem document. */
export class ApiProblemError extends CliError {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly parameter: string | undefined,
    readonly url: string,
  ) {
    const where = parameter ? ` (parameter: ${parameter})` : '';
    super(
      `the API answered ${status} ${title}: ${detail}${where}`,
      status >= 400 && status < 500 ? EXIT.rejected : EXIT.failed,
    );
  }
}

/** The API answered 2xx with a body that does not match its schema. */
export class BadAnswerError extends CliError {
  constructor(url: string, reason: string) {
    super(`unexpected answer from ${url}: ${reason}`, EXIT.failed);
  }
}
