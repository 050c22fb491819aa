/**
 * Cursor keys from Secrets Manager (cache, AWSPREVIOUS, failures) and the
 * rotation function's four steps, through which a cursor issued before a
 * rotation keeps verifying until the next one.
 */
import { describe, expect, it } from 'vitest';
import { rotateStep } from '../../../functions/cursor-rotation/rotation.js';
import { CursorCodec, type CursorState } from '../../../functions/query/cursor.js';
import { secretsManagerCursorKeys } from '../../../functions/query/cursor-keys.js';
import { LocalCursorKeys } from '../../../local/cursor-keys.js';
import { SecretsStore } from '../../support/secrets-store.js';

const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:cursor-AbCdEf';
const FIRST = 'k'.repeat(64);
const state: CursorState = { scope: 's', since: 1, now: 2, after: { lastSeen: 2, key: 'x' } };

async function rotate(store: SecretsStore, token: string, log: string[] = []) {
  store.beginRotation(token);
  for (const Step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) {
    await rotateStep(
      { Step, SecretId: SECRET, ClientRequestToken: token },
      { client: store, log: (m) => log.push(m) },
    );
  }
}

describe('secretsManagerCursorKeys', () => {
  it('reads AWSCURRENT, tolerates a missing AWSPREVIOUS, and caches for maxAgeMs', async () => {
    const store = new SecretsStore(SECRET, FIRST);
    const clock = { t: 0 };
    const keys = secretsManagerCursorKeys({
      client: store,
      secretId: SECRET,
      maxAgeMs: 300_000,
      minRefreshMs: 30_000,
      now: () => clock.t,
    });
    expect(await keys.keys()).toEqual({ current: FIRST, previous: [] });
    expect(store.calls).toHaveLength(2);
    clock.t = 299_999;
    await keys.keys();
    expect(store.calls).toHaveLength(2);
    // A forced reload is rate-limited, then honoured.
    clock.t = 10_000;
    await keys.keys({ refresh: true });
    expect(store.calls).toHaveLength(2);
    clock.t = 40_000;
    await keys.keys({ refresh: true });
    expect(store.calls).toHaveLength(4);
  });

  it('keeps the cached keys when a reload fails, warning once; fails with the fix when it has none', async () => {
    const store = new SecretsStore(SECRET, FIRST);
    const clock = { t: 0 };
    const warnings: string[] = [];
    const keys = secretsManagerCursorKeys({
      client: store,
      secretId: SECRET,
      now: () => clock.t,
      warn: (m) => warnings.push(m),
    });
    await keys.keys();
    store.failNext = 10;
    clock.t = 10 * 60_000;
    expect((await keys.keys()).current).toBe(FIRST);
    clock.t = 20 * 60_000;
    expect((await keys.keys()).current).toBe(FIRST);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/using the cached ones: ServiceUnavailable/);

    const cold = secretsManagerCursorKeys({ client: store, secretId: SECRET });
    await expect(cold.keys()).rejects.toThrow(
      /cannot read the cursor keys from arn:.*needs secretsmanager:GetSecretValue/,
    );
  });

  it('refuses a secret value too short to be a key', async () => {
    const store = new SecretsStore(SECRET, 'short');
    const keys = secretsManagerCursorKeys({ client: store, secretId: SECRET });
    await expect(keys.keys()).rejects.toThrow(/unusable \(5 characters; need 32 to 4096/);
  });
});

describe('rotation', () => {
  it('makes a fresh key current and keeps the replaced one as previous, so open cursors verify', async () => {
    const store = new SecretsStore(SECRET, FIRST);
    const clock = { t: 0 };
    const keys = secretsManagerCursorKeys({ client: store, secretId: SECRET, now: () => clock.t });
    const before = new CursorCodec(await keys.keys());
    const cursor = before.encode(state);

    const log: string[] = [];
    await rotate(store, 'token-1', log);
    expect(log.at(-1)).toBe(
      'rotation finishSecret: version token-1 is AWSCURRENT, v0 is AWSPREVIOUS',
    );
    clock.t = 60_000;
    const after = await keys.keys({ refresh: true });
    expect(after.previous).toEqual([FIRST]);
    expect(after.current).not.toBe(FIRST);
    expect(after.current).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const rotated = new CursorCodec(after);
    expect(rotated.decode(cursor, 's')).toEqual(state);

    // The next rotation retires the first key.
    await rotate(store, 'token-2');
    clock.t = 120_000;
    const twice = new CursorCodec(await keys.keys({ refresh: true }));
    expect(() => twice.decode(cursor, 's')).toThrow(/no longer valid/);
    expect(twice.decode(rotated.encode(state), 's')).toEqual(state);
  });

  it('is idempotent per step and refuses tokens that are not pending', async () => {
    const store = new SecretsStore(SECRET, FIRST);
    store.beginRotation('token-1');
    const deps = { client: store, log: () => {} };
    const event = { SecretId: SECRET, ClientRequestToken: 'token-1' };
    await rotateStep({ ...event, Step: 'createSecret' }, deps);
    const value = store.versions.get('token-1')!.value;
    // Secrets Manager retries a step: the key is not replaced.
    await rotateStep({ ...event, Step: 'createSecret' }, deps);
    expect(store.versions.get('token-1')!.value).toBe(value);
    await expect(
      rotateStep({ ...event, ClientRequestToken: 'other', Step: 'createSecret' }, deps),
    ).rejects.toThrow(/has no version other/);
    await expect(
      rotateStep({ ...event, ClientRequestToken: 'v0', Step: 'finishSecret' }, deps),
    ).resolves.toBeUndefined();
    store.rotationEnabled = false;
    await expect(rotateStep({ ...event, Step: 'testSecret' }, deps)).rejects.toThrow(
      /does not have rotation enabled/,
    );
  });
});

describe('LocalCursorKeys', () => {
  it('rotates in memory the way the secret does', async () => {
    const local = new LocalCursorKeys('local-key');
    const first = await local.keys();
    expect(first).toEqual({ current: 'local-key', previous: [] });
    local.rotate();
    const next = await local.keys();
    expect(next.previous).toEqual(['local-key']);
    expect(new CursorCodec(next).decode(new CursorCodec(first).encode(state), 's')).toEqual(state);
  });
});
