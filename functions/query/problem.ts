/** Errors the API answers with, as RFC 9457 problem details. */
import type { z } from 'zod';
import type { Problem } from '../../contract/api-schemas.js';

/** An error that becomes an `application/problem+json` answer. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly parameter?: string,
  ) {
    super(detail);
  }

  /** The body of the answer. */
  toBody(): Problem {
    return {
      type: 'about:blank',
      title: this.title,
      status: this.status,
      detail: this.detail,
      ...(this.parameter ? { parameter: this.parameter } : {}),
    };
  }
}

/** A 400 naming the parameter at fault. */
export function badRequest(parameter: string, detail: string): HttpProblem {
  return new HttpProblem(400, 'Bad Request', detail, parameter);
}

/** Turns the first zod issue into a 400 naming its parameter (or `where` for a path parameter). */
export function problemFromZod(error: z.ZodError, where?: string): HttpProblem {
  const issue = error.issues[0];
  const parameter = where ?? (issue?.path[0] !== undefined ? String(issue.path[0]) : 'query');
  if (issue?.code === 'unrecognized_keys') {
    const keys = issue.keys.join(', ');
    return badRequest(issue.keys[0] ?? parameter, `unknown query parameter: ${keys}`);
  }
  return badRequest(parameter, `${parameter}: ${issue?.message ?? 'invalid'}`);
}
