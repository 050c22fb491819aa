/**
 * What a function learns from its environment: the table, the windows, the
 * cursor key or its secret, and (local mode) where DynamoDB is.
 */
import { DEFAULTS, ENV, RESOURCE_NAMES } from '../../contract/resources.js';

/** Settings shared by the functions. */
export interface FunctionConfig {
  table: string;
  /** Seconds after its last packet that a client stops being active. */
  activeWindowSeconds: number;
  /** Hours an item is kept after its last packet. */
  retentionHours: number;
  /** Key that signs pagination cursors; undefined means "make one up per process". */
  cursorKey?: string;
  /** Secret holding the cursor keys (deployed); takes precedence over cursorKey. */
  cursorSecretId?: string;
  /** Endpoint override for DynamoDB (local mode). */
  dynamodbEndpoint?: string;
  /** Prefix of the stack's alarm names (deployed); without it the API lists no alarms. */
  alarmPrefix?: string;
}

function positiveNumber(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`environment variable ${name}=${JSON.stringify(raw)} is not a positive number`);
  }
  return value;
}

/** Reads the function settings from environment variables, with the contract's defaults. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): FunctionConfig {
  return {
    table: env[ENV.table] || RESOURCE_NAMES.table,
    activeWindowSeconds: positiveNumber(env, ENV.activeWindow, DEFAULTS.activeWindowSeconds),
    retentionHours: positiveNumber(env, ENV.retentionHours, DEFAULTS.retentionHours),
    cursorKey: env[ENV.cursorKey] || undefined,
    cursorSecretId: env[ENV.cursorSecret] || undefined,
    dynamodbEndpoint: env[ENV.dynamodbEndpoint] || undefined,
    alarmPrefix: env[ENV.alarmPrefix] || undefined,
  };
}
