/**
 * The `context` object Lambda passes a handler, built locally with plausible
 * values so handlers (and Powertools) read what they would read in AWS.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

/** Account id that local ARNs carry (the one the emulators report). */
export const LOCAL_ACCOUNT_ID = '000000000000';

export interface LambdaContextOptions {
  functionName: string;
  region: string;
  accountId?: string;
  /** The function's timeout: getRemainingTimeInMillis counts down from it. */
  timeoutMs?: number;
  memoryLimitInMB?: number;
}

/** A fresh invocation context (new request id, deadline starting now). */
export function lambdaContext(options: LambdaContextOptions): Context {
  const accountId = options.accountId ?? LOCAL_ACCOUNT_ID;
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  const requestId = randomUUID();
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
  const unsupported = () => {
    throw new Error('context.done/fail/succeed are not supported locally: return or throw instead');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: options.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${options.region}:${accountId}:function:${options.functionName}`,
    memoryLimitInMB: String(options.memoryLimitInMB ?? 1024),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${options.functionName}`,
    logStreamName: `${day}/[$LATEST]${requestId.replaceAll('-', '')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}
