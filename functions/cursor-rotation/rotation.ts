/**
 * Rotation of the cursor secret, in Secrets Manager's four steps. The key is
 * used by nothing outside this stack, so setSecret has nothing to configure;
 * createSecret stores a fresh random key as AWSPENDING, testSecret checks it
 * can sign, and finishSecret makes it AWSCURRENT (Secrets Manager then marks
 * the replaced version AWSPREVIOUS, which the query function still accepts).
 */
import { randomBytes } from 'node:crypto';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import type { SecretsManagerRotationEvent } from 'aws-lambda';
import { checkCursorKey } from '../query/cursor-keys.js';

/** Random bytes per key: 256 bits, written as base64url text. */
const KEY_BYTES = 32;

/** What a rotation step needs. */
export interface RotationDeps {
  client: Pick<SecretsManagerClient, 'send'>;
  log: (message: string) => void;
}

/** Runs one rotation step for `event`; throws (and Secrets Manager retries) on any doubt. */
export async function rotateStep(event: SecretsManagerRotationEvent, deps: RotationDeps) {
  const { SecretId: secretId, ClientRequestToken: token, Step: step } = event;
  const { client } = deps;
  const described = await client.send(new DescribeSecretCommand({ SecretId: secretId }));
  if (!described.RotationEnabled) {
    throw new Error(`secret ${secretId} does not have rotation enabled`);
  }
  const stages = described.VersionIdsToStages ?? {};
  const ofToken = stages[token];
  if (!ofToken) {
    throw new Error(`secret ${secretId} has no version ${token} to rotate to`);
  }
  if (ofToken.includes('AWSCURRENT')) {
    deps.log(`rotation ${step}: version ${token} is already AWSCURRENT`);
    return;
  }
  if (!ofToken.includes('AWSPENDING')) {
    throw new Error(`version ${token} of secret ${secretId} is not AWSPENDING`);
  }

  switch (step) {
    case 'createSecret': {
      try {
        await client.send(
          new GetSecretValueCommand({
            SecretId: secretId,
            VersionId: token,
            VersionStage: 'AWSPENDING',
          }),
        );
        deps.log(`rotation createSecret: version ${token} already holds a key`);
        return;
      } catch (err) {
        if (!(err instanceof ResourceNotFoundException)) throw err;
      }
      await client.send(
        new PutSecretValueCommand({
          SecretId: secretId,
          ClientRequestToken: token,
          SecretString: randomBytes(KEY_BYTES).toString('base64url'),
          VersionStages: ['AWSPENDING'],
        }),
      );
      deps.log(`rotation createSecret: stored a new key as version ${token}`);
      return;
    }
    case 'setSecret':
      // Only this stack's query function uses the key: nothing to configure.
      return;
    case 'testSecret': {
      const pending = await client.send(
        new GetSecretValueCommand({
          SecretId: secretId,
          VersionId: token,
          VersionStage: 'AWSPENDING',
        }),
      );
      checkCursorKey(pending.SecretString, `${secretId} (version ${token})`);
      return;
    }
    case 'finishSecret': {
      const current = Object.entries(stages).find(([, s]) => s.includes('AWSCURRENT'))?.[0];
      await client.send(
        new UpdateSecretVersionStageCommand({
          SecretId: secretId,
          VersionStage: 'AWSCURRENT',
          MoveToVersionId: token,
          RemoveFromVersionId: current,
        }),
      );
      deps.log(
        `rotation finishSecret: version ${token} is AWSCURRENT, ${current ?? 'none'} is AWSPREVIOUS`,
      );
      return;
    }
    default:
      throw new Error(`unknown rotation step ${JSON.stringify(step)}`);
  }
}
