/**
 * Which Node versions the host programs (agent and CLI) run on, and how they
 * say so: the AWS SDK's own notice is a multi-line warning a user cannot act
 * on at every client creation; the agent prints one line of ours instead.
 */

/** The Node major the AWS SDK requires for releases after the first week of January 2027. */
export const RECOMMENDED_NODE_MAJOR = 22;

/** The variable the AWS SDK (v3) reads, when it creates a client, to skip its Node-version notice. */
export const SDK_NODE_NOTICE_OFF = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED';

/** Turns off the SDK's Node-version notice in this process, unless the user set the variable. */
export function silenceSdkNodeNotice(env: NodeJS.ProcessEnv = process.env): void {
  env[SDK_NODE_NOTICE_OFF] ??= 'true';
}

/** Our one-line upgrade notice for a Node version like `v20.19.0`, or null when it is recent enough. */
export function nodeSupportNotice(version: string): string | null {
  const major = Number.parseInt(/^v?(\d+)\./.exec(version)?.[1] ?? '', 10);
  if (!Number.isFinite(major) || major >= RECOMMENDED_NODE_MAJOR) return null;
  return `Node ${version} is end-of-life upstream and the AWS SDK drops it in January 2027: upgrade this host to Node ${RECOMMENDED_NODE_MAJOR} or later`;
}
