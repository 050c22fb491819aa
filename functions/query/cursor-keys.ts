/**
 * Where the query function gets its cursor keys. Deployed: the cursor secret
 * in Secrets Manager, its AWSCURRENT version signing and its AWSPREVIOUS one
 * still verifying, cached for a few minutes. Local mode and tests pass a
 * provider of their own (local/cursor-keys.ts) to the same code path.
 */
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { CursorKeys } from './cursor.js';

/** Supplies the current key set; `refresh` asks for a reload (a cursor named a key not held). */
export interface CursorKeyProvider {
  keys(options?: { refresh?: boolean }): Promise<CursorKeys>;
}

/** Bounds on a key read from the secret: long enough to be a key, short enough to be one. */
const MIN_KEY_CHARS = 32;
const MAX_KEY_CHARS = 4096;

/** Throws unless `key` can sign cursors; `where` names its source for the message. */
export function checkCursorKey(key: unknown, where: string): string {
  if (typeof key !== 'string' || key.length < MIN_KEY_CHARS || key.length > MAX_KEY_CHARS) {
    const what = typeof key === 'string' ? `${key.length} characters` : `no SecretString`;
    throw new Error(
      `cursor key ${where} is unusable (${what}; need ${MIN_KEY_CHARS} to ${MAX_KEY_CHARS} characters): rotate the secret to write a fresh key`,
    );
  }
  return key;
}

/** Settings of the Secrets Manager provider. */
export interface SecretsManagerKeysOptions {
  client: Pick<SecretsManagerClient, 'send'>;
  secretId: string;
  /** How long fetched keys are used before they are fetched again. */
  maxAgeMs?: number;
  /** Least time between two forced reloads, so forged key ids cannot drive Secrets Manager calls. */
  minRefreshMs?: number;
  now?: () => number;
  /** Told once per episode when a reload fails and the cached keys stay in use. */
  warn?: (message: string) => void;
}

/** Keys from the secret's AWSCURRENT and AWSPREVIOUS versions, cached. */
export function secretsManagerCursorKeys(options: SecretsManagerKeysOptions): CursorKeyProvider {
  const maxAgeMs = options.maxAgeMs ?? 5 * 60_000;
  const minRefreshMs = options.minRefreshMs ?? 30_000;
  const now = options.now ?? Date.now;
  let cached: { keys: CursorKeys; at: number } | undefined;
  let loading: Promise<CursorKeys> | undefined;
  let failing = false;

  const stage = async (versionStage: 'AWSCURRENT' | 'AWSPREVIOUS') => {
    try {
      const out = await options.client.send(
        new GetSecretValueCommand({ SecretId: options.secretId, VersionStage: versionStage }),
      );
      return checkCursorKey(out.SecretString, `${options.secretId} (${versionStage})`);
    } catch (err) {
      // A secret never rotated has no AWSPREVIOUS version.
      if (versionStage === 'AWSPREVIOUS' && err instanceof ResourceNotFoundException) return null;
      throw err;
    }
  };

  const load = async (): Promise<CursorKeys> => {
    const [current, previous] = await Promise.all([stage('AWSCURRENT'), stage('AWSPREVIOUS')]);
    const keys = {
      current: current!,
      previous: previous && previous !== current ? [previous] : [],
    };
    cached = { keys, at: now() };
    failing = false;
    return keys;
  };

  return {
    async keys({ refresh = false } = {}) {
      const age = cached ? now() - cached.at : Number.POSITIVE_INFINITY;
      const due = age >= maxAgeMs || (refresh && age >= minRefreshMs);
      if (cached && !due) return cached.keys;
      loading ??= load().finally(() => {
        loading = undefined;
      });
      try {
        return await loading;
      } catch (err) {
        if (!cached) {
          throw new Error(
            `cannot read the cursor keys from ${options.secretId}: ${(err as Error).message} (the function needs secretsmanager:GetSecretValue on it)`,
          );
        }
        // Keep paging with the keys we have; retry at the next due time.
        if (!failing) {
          failing = true;
          options.warn?.(
            `reloading the cursor keys from ${options.secretId} failed, using the cached ones: ${(err as Error).message}`,
          );
        }
        cached = { keys: cached.keys, at: now() - maxAgeMs + minRefreshMs };
        return cached.keys;
      }
    },
  };
}

/** One fixed key set (a configured key, or a random one per process). */
export function staticCursorKeys(keys: CursorKeys): CursorKeyProvider {
  return { keys: async () => keys };
}
