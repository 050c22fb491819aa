/**
 * Requests to a deployed stack's API, which uses IAM auth: each request is
 * signed with AWS Signature Version 4 for the `execute-api` service.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { CliError, EXIT } from './cli-errors.js';

/** The subset of `fetch` the API client uses. */
export type FetchLike = (
  url: string,
  init: { method: 'GET'; headers: Record<string, string>; signal?: AbortSignal },
) => Promise<Response>;

/** Credentials, or a provider of them, as the signer takes them. */
export type CredentialsInput = ConstructorParameters<typeof SignatureV4>[0]['credentials'];

/** The service name API Gateway checks signatures against. */
export const SIGNING_SERVICE = 'execute-api';

const EXECUTE_API_HOST_RE = /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/;

/** Whether a hostname is this machine (then there is nothing to sign for). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** Requests are signed when they go over https to anything but this machine. */
export function needsSigning(url: URL): boolean {
  return url.protocol === 'https:' && !isLoopbackHost(url.hostname);
}

/** The region of an `<id>.execute-api.<region>.amazonaws.com` hostname, if it is one. */
export function regionFromHost(hostname: string): string | undefined {
  return EXECUTE_API_HOST_RE.exec(hostname.toLowerCase())?.[1];
}

/**
 * The signing region: `--region` first, then the API hostname (the region a
 * default execute-api URL names is the one that checks the signature), then
 * AWS_REGION / AWS_DEFAULT_REGION (custom domain names carry no region).
 */
export function resolveRegion(
  url: URL,
  flag: string | undefined,
  env: Record<string, string | undefined>,
): string | undefined {
  return flag || regionFromHost(url.hostname) || env.AWS_REGION || env.AWS_DEFAULT_REGION;
}

/** Query parameters of a URL as the signer takes them (repeated keys become arrays). */
function queryOf(url: URL): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of url.searchParams) {
    const seen = query[key];
    query[key] =
      seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return query;
}

/** Options of a signer: where it signs for, and (for tests) a fixed signing time. */
export interface SignOptions {
  region: string;
  credentials: CredentialsInput;
  signingDate?: Date;
}

/** Signs a GET of `url` and returns the headers to send with it (host included). */
export async function signGet(url: URL, options: SignOptions): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    service: SIGNING_SERVICE,
    region: options.region,
    credentials: options.credentials,
    sha256: Sha256,
    // execute-api does not need the payload hash header; a GET has no body.
    applyChecksum: false,
  });
  const request = new HttpRequest({
    method: 'GET',
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    // The path as it goes on the wire (already percent-encoded); the signer encodes it once more, as SigV4 requires.
    path: url.pathname,
    query: queryOf(url),
    headers: { host: url.host, accept: 'application/json' },
  });
  const signed = await signer.sign(
    request,
    options.signingDate ? { signingDate: options.signingDate } : {},
  );
  return { ...(signed.headers as Record<string, string>) };
}

/** A fetch that signs every request with SigV4 before sending it with `inner`. */
export function createSigV4Fetch(options: SignOptions, inner: FetchLike = fetch): FetchLike {
  return async (url, init) => {
    let headers: Record<string, string>;
    try {
      headers = await signGet(new URL(url), options);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new CliError(
        `cannot sign the request with SigV4 (region ${options.region}): ${why}\n` +
          'Configure AWS credentials (AWS_PROFILE, `aws sso login`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).',
        EXIT.failed,
      );
    }
    // fetch sets Host itself from the URL, to the same value that was signed.
    const { host: _host, ...rest } = headers;
    return inner(url, { ...init, headers: { ...init.headers, ...rest } });
  };
}

/** Credentials from the default AWS chain (env, SSO, shared files, instance/container roles), loaded only when needed. */
export async function defaultCredentials(): Promise<CredentialsInput> {
  const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
  return fromNodeProviderChain();
}
