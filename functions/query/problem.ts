/** Errors the API answers with, as RFC 9457 problem details. */
import type { z } from 'zod';
import { type Problem, problemBody, quoteValue } from '../../contract/api-schemas.js';

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
    return problemBody(this.status, this.title, this.detail, this.parameter);
  }
}

/** Longest parameter name an answer repeats (names come from the request). */
const NAME_MAX = 64;

/** A 400 naming the parameter at fault (its name cut to NAME_MAX characters). */
export function badRequest(parameter: string, detail: string): HttpProblem {
  return new HttpProblem(400, 'Bad Request', detail, parameter.slice(0, NAME_MAX));
}
/** Unknown parameters an answer lists by name; the rest are counted. */
const KEYS_SHOWN = 5;

/** A parameter name as an error shows it: bare when a plain word, quoted (and cut short) otherwise. */
export function shownName(name: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(name) ? name : quoteValue(name);
}

/** Turns the first zod issue into a 400 naming its parameter (or `where` for a path parameter). */
export function problemFromZod(error: z.ZodError, where?: string): HttpProblem {
  const issue = error.issues[0];
  const parameter = where ?? (issue?.path[0] !== undefined ? String(issue.path[0]) : 'query');
  if (issue?.code === 'unrecognized_keys') {
    const shown = issue.keys.slice(0, KEYS_SHOWN).map(shownName).join(', ');
    const more =
      issue.keys.length > KEYS_SHOWN ? ` and ${issue.keys.length - KEYS_SHOWN} more` : '';
    const keys = `${shown}${more}`;
    return badRequest(issue.keys[0] ?? parameter, `unknown query parameter: ${keys}`);
  }
  return badRequest(parameter, `${parameter}: ${issue?.message ?? 'invalid'}`);
}
