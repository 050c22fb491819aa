/** The OpenAPI 3.1 description of the API, generated from the zod schemas the routes validate with. */
import { z } from 'zod';
import { Problem } from '../../contract/api-schemas.js';
import type { Route } from './routes.js';

type JsonObject = Record<string, unknown>;

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
  }) as JsonObject;
  return rest;
}

function operation(route: Route): JsonObject {
  const parameters: JsonObject[] = [];
  for (const [name, schema] of Object.entries(route.pathParams)) {
    const json = schemaOf(schema, 'input');
    parameters.push({
      name,
      in: 'path',
      required: true,
      description: json.description,
      schema: json,
    });
  }
  for (const [name, schema] of Object.entries(route.query.shape)) {
    const json = schemaOf(schema as z.ZodType, 'input');
    const optional = (schema as z.ZodType).safeParse(undefined).success;
    parameters.push({
      name,
      in: 'query',
      required: !optional,
      description: json.description,
      schema: json,
    });
  }
  const problem = {
    'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
  };
  return {
    summary: route.summary,
    operationId: route.path
      .split('/')
      .filter((s) => s && s !== 'v1')
      .map((s) => s.replace(/[{}]/g, ''))
      .join('_'),
    parameters,
    security: [{ sigv4: [] }],
    responses: {
      '200': {
        description: 'OK',
        content: { 'application/json': { schema: schemaOf(route.response, 'output') } },
      },
      '400': { description: 'A parameter is invalid; `parameter` names it.', content: problem },
      '500': { description: 'The service failed; retry later.', content: problem },
    },
  };
}

/** Builds the OpenAPI 3.1 document of the given routes. */
export function buildOpenApi(routes: readonly Route[]): JsonObject {
  const paths: JsonObject = {};
  for (const r of routes) paths[r.path] = { get: operation(r) };
  paths['/v1/openapi.json'] = {
    get: {
      summary: 'This document.',
      operationId: 'openapi',
      security: [{ sigv4: [] }],
      responses: {
        '200': { description: 'OpenAPI 3.1 document', content: { 'application/json': {} } },
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'udpwatch API',
      version: '1',
      description:
        'Which clients are actively talking to our UDP daemons, fleet-wide. All times are epoch milliseconds; windows are seconds.',
    },
    paths,
    components: {
      schemas: { Problem: schemaOf(Problem, 'output') },
      securitySchemes: {
        sigv4: {
          type: 'apiKey',
          name: 'Authorization',
          in: 'header',
          description: 'AWS Signature Version 4 (API Gateway IAM authorization).',
        },
      },
    },
  };
}
