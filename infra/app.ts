/**
 * The CDK app (cdk.json runs this file): reads the context, validates it,
 * builds the udpwatch stack and runs the cdk-nag AwsSolutions checks on it.
 * Tests call buildApp() to synthesize without the CLI.
 */
import { pathToFileURL } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { type Config, ConfigError, ConfigSchema, parseConfig, REMOVED_KEYS } from './config.js';
import { UdpwatchStack } from './udpwatch-stack.js';

/** What buildApp returns: the app, its one stack and the settings it was built with. */
export interface BuiltApp {
  app: App;
  stack: UdpwatchStack;
  config: Config;
}

/**
 * Builds the app. `context` replaces what the CLI passes (cdk.json and `-c`);
 * without it the app reads the CLI's context.
 */
export function buildApp(context?: Record<string, unknown>, outdir?: string): BuiltApp {
  const app = new App({ context, outdir });
  const raw = Object.fromEntries(
    [...Object.keys(ConfigSchema.shape), ...Object.keys(REMOVED_KEYS)].map((key) => [
      key,
      app.node.tryGetContext(key),
    ]),
  );
  const config = parseConfig(raw);
  const stack = new UdpwatchStack(app, config.stackName, {
    stackName: config.stackName,
    description: 'udpwatch: active clients of UDP daemons across the fleet',
    config,
  });
  // Runs when the app synthesizes: any finding not acknowledged with a reason
  // (Validations.of(construct).acknowledge) fails the synth. The reasons are
  // also written into the template's resource metadata as an audit trail.
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }),
  );
  return { app, stack, config };
}

const runDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (runDirectly) {
  try {
    buildApp().app.synth();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}
