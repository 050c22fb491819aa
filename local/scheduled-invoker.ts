/**
 * A local stand-in for an EventBridge schedule rule: invokes a handler every
 * interval with the Scheduled Event EventBridge would send, never two at once.
 */
import { randomUUID } from 'node:crypto';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { LOCAL_REGION } from './aws-clients.js';
import { LOCAL_ACCOUNT_ID, lambdaContext } from './lambda-context.js';

/** A function run on a schedule. */
export type ScheduledHandler = (event: ScheduledEvent, context: Context) => Promise<unknown>;

export interface ScheduleOptions {
  handler: ScheduledHandler;
  intervalMs: number;
  functionName: string;
  ruleName?: string;
  region?: string;
  accountId?: string;
  /** The function's timeout, as its context counts it down (default 60 s). */
  timeoutMs?: number;
  /** Each invocation's result (e.g. to print or to evaluate local alarms). */
  onResult?: (result: unknown) => void;
  /** A failed invocation (default console.error). */
  onError?: (err: unknown) => void;
}

export interface Schedule {
  /** Invokes the handler now (waiting for a run in progress first) and returns its result. */
  runOnce(): Promise<unknown>;
  stop(): Promise<void>;
}

/** Starts invoking the handler every intervalMs (first run after one interval). */
export function startSchedule(options: ScheduleOptions): Schedule {
  const region = options.region ?? LOCAL_REGION;
  const accountId = options.accountId ?? LOCAL_ACCOUNT_ID;
  const ruleArn = `arn:aws:events:${region}:${accountId}:rule/${options.ruleName ?? `${options.functionName}-schedule`}`;
  const onError =
    options.onError ?? ((err: unknown) => console.error(`${options.functionName} failed:`, err));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let last: Promise<unknown> = Promise.resolve();

  const invoke = async (): Promise<unknown> => {
    const event: ScheduledEvent = {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: accountId,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region,
      resources: [ruleArn],
      detail: {},
    };
    const result = await options.handler(
      event,
      lambdaContext({
        functionName: options.functionName,
        region,
        accountId,
        timeoutMs: options.timeoutMs,
      }),
    );
    options.onResult?.(result);
    return result;
  };

  /** Runs after whatever is in progress, so invocations never overlap. */
  const enqueue = () => {
    const run = last.catch(() => undefined).then(invoke);
    last = run;
    return run;
  };

  const tick = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      enqueue().catch(onError).finally(tick);
    }, options.intervalMs);
    timer.unref();
  };
  tick();

  return {
    runOnce: enqueue,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await last.catch(() => undefined);
    },
  };
}
