// biome-ignore-all lint/suspicious/noExplicitAny: SDK command inputs and outputs, checked by the code under test
/**
 * An in-memory stand-in for the four Secrets Manager calls rotation and the
 * query function make (there is no local Secrets Manager emulator): versions
 * with stages, where moving AWSCURRENT moves the old current to AWSPREVIOUS,
 * as the service does. `failNext` injects a service failure.
 */
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';

export class SecretsStore {
  readonly versions = new Map<string, { value: string; stages: Set<string> }>();
  calls: string[] = [];
  failNext = 0;
  rotationEnabled = true;

  constructor(
    readonly secretId: string,
    initial: string,
  ) {
    this.versions.set('v0', { value: initial, stages: new Set(['AWSCURRENT']) });
  }

  private notFound(what: string): never {
    throw new ResourceNotFoundException({ message: `${what} not found`, $metadata: {} });
  }

  private byStage(stage: string) {
    return [...this.versions.entries()].find(([, v]) => v.stages.has(stage));
  }

  /** Starts a rotation as the service does: a new version id marked AWSPENDING, without a value. */
  beginRotation(token: string): void {
    for (const v of this.versions.values()) v.stages.delete('AWSPENDING');
    this.versions.set(token, { value: '', stages: new Set(['AWSPENDING']) });
  }

  async send(command: unknown): Promise<any> {
    const name = (command as object).constructor.name;
    this.calls.push(name);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('ServiceUnavailable: injected');
    }
    const input = (command as { input: Record<string, any> }).input;
    if (input.SecretId !== this.secretId) this.notFound(`secret ${input.SecretId}`);
    if (command instanceof DescribeSecretCommand) {
      return {
        RotationEnabled: this.rotationEnabled,
        VersionIdsToStages: Object.fromEntries(
          [...this.versions].map(([id, v]) => [id, [...v.stages]]),
        ),
      };
    }
    if (command instanceof GetSecretValueCommand) {
      const found = input.VersionId
        ? ([input.VersionId, this.versions.get(input.VersionId)] as const)
        : this.byStage(input.VersionStage ?? 'AWSCURRENT');
      const [id, v] = found ?? [];
      if (!id || !v || v.value === '') this.notFound('version');
      if (input.VersionStage && !v.stages.has(input.VersionStage)) this.notFound('stage');
      return { VersionId: id, SecretString: v.value };
    }
    if (command instanceof PutSecretValueCommand) {
      const v = this.versions.get(input.ClientRequestToken);
      this.versions.set(input.ClientRequestToken, {
        value: input.SecretString,
        stages: new Set([...(v?.stages ?? []), ...input.VersionStages]),
      });
      return {};
    }
    if (command instanceof UpdateSecretVersionStageCommand) {
      if (input.VersionStage !== 'AWSCURRENT') throw new Error('only AWSCURRENT moves here');
      const old = this.byStage('AWSCURRENT');
      if (old && old[0] !== input.RemoveFromVersionId)
        throw new Error('RemoveFromVersionId is not current');
      for (const v of this.versions.values()) v.stages.delete('AWSPREVIOUS');
      if (old) {
        old[1].stages.delete('AWSCURRENT');
        old[1].stages.add('AWSPREVIOUS');
      }
      const next = this.versions.get(input.MoveToVersionId)!;
      next.stages.add('AWSCURRENT');
      next.stages.delete('AWSPENDING');
      return {};
    }
    throw new Error(`unexpected command ${name}`);
  }
}
