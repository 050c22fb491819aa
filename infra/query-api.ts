/**
 * The HTTP API in front of the query function. Every route requires IAM
 * authorization (SigV4-signed requests from principals allowed
 * execute-api:Invoke), the stage is throttled, and access is logged.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  HttpApi,
  HttpMethod,
  type HttpStage,
  LogGroupLogDestination,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** Settings of the query API. */
export interface QueryApiProps {
  namePrefix: string;
  handler: IFunction;
  rateLimit: number;
  burstLimit: number;
  logRetention: RetentionDays;
  /** Encrypts the access logs (they hold callers' source addresses). */
  logKey: IKey;
  logGroupName: string;
}

/** Every API path lives under /v1; anything else is a 404 from API Gateway itself. */
export const API_ROUTE_PATH = '/v1/{proxy+}';

/** HTTP API (payload format 2.0) with IAM auth on every route and a throttled stage. */
export class QueryApi extends Construct {
  readonly api: HttpApi;
  readonly stage: HttpStage;

  constructor(scope: Construct, id: string, props: QueryApiProps) {
    super(scope, id);
    const authorizer = new HttpIamAuthorizer();
    this.api = new HttpApi(this, 'Api', {
      apiName: `${props.namePrefix}udpwatch`,
      description: 'udpwatch: which clients are active on which UDP services',
      defaultAuthorizer: authorizer,
      // The stage is added below so it can carry throttling and access logs.
      createDefaultStage: false,
    });
    this.api.addRoutes({
      path: API_ROUTE_PATH,
      methods: [HttpMethod.GET],
      integration: new HttpLambdaIntegration('Query', props.handler),
      authorizer,
    });
    const accessLogs = new LogGroup(this, 'AccessLogs', {
      logGroupName: props.logGroupName,
      encryptionKey: props.logKey,
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = this.api.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: props.rateLimit, burstLimit: props.burstLimit },
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            caller: '$context.identity.caller',
            userArn: '$context.identity.userArn',
            sourceIp: '$context.identity.sourceIp',
            requestTime: '$context.requestTime',
            routeKey: '$context.routeKey',
            path: '$context.path',
            status: '$context.status',
            responseLength: '$context.responseLength',
            integrationLatency: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
          }),
        ),
      },
    });
  }
}
