/**
 * The answers docs/api.md shows are answers the API can give: every JSON
 * printed after a `curl -s` of a `/v1/...` route parses with that route's
 * response schema (or the problem schema), and holds no field the schema
 * does not know.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { Problem } from '../../../contract/api-schemas.js';
import { matchPath, ROUTES } from '../../../functions/query/routes.js';

const ROOT = join(import.meta.dirname, '../../..');

/** Each `$ curl -s '<url>'` of the page with the JSON printed under it (up to the next command or the block's end). */
function examples(markdown: string): { url: string; json: string }[] {
  const out: { url: string; json: string }[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\$ curl -s ['"](http:\/\/127\.0\.0\.1:7787\/v1\/[^'"]+)['"]/.exec(lines[i]!);
    if (!m) continue;
    const body: string[] = [];
    for (let j = i + 1; j < lines.length && !/^(\$ |```)/.test(lines[j]!); j++)
      body.push(lines[j]!);
    if (body.join('').trim()) out.push({ url: m[1]!, json: body.join('\n') });
  }
  return out;
}

/** The keys of `value` (deeply) that `parsed` dropped: fields the schema does not define. */
function unknownKeys(value: unknown, parsed: unknown, at = ''): string[] {
  if (Array.isArray(value) && Array.isArray(parsed))
    return value.flatMap((v, i) => unknownKeys(v, parsed[i], `${at}[${i}]`));
  if (value && typeof value === 'object' && parsed && typeof parsed === 'object') {
    return Object.entries(value).flatMap(([k, v]) =>
      k in parsed
        ? unknownKeys(v, (parsed as Record<string, unknown>)[k], `${at}.${k}`)
        : [`${at}.${k}`],
    );
  }
  return [];
}

describe('docs/api.md answers', () => {
  const shown = examples(readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8'));

  it('has examples of the history and alarms routes among the others', () => {
    const paths = shown.map((e) => new URL(e.url).pathname);
    expect(paths).toContain('/v1/services/demo-echo/history');
    expect(paths).toContain('/v1/alarms');
    expect(shown.length).toBeGreaterThan(8);
  });

  it.each(shown.map((e) => [e.url, e] as const))('%s answers in its route schema', (_url, e) => {
    const path = new URL(e.url).pathname;
    const route = ROUTES.find((r) => matchPath(r.path, path) !== null);
    expect(route, path).toBeDefined();
    const value = JSON.parse(e.json) as Record<string, unknown>;
    const schema: z.ZodType = value.type === 'about:blank' ? Problem : route!.response;
    const parsed = schema.safeParse(value);
    expect(parsed.error?.issues ?? [], path).toEqual([]);
    expect(unknownKeys(value, parsed.data), path).toEqual([]);
  });
});
