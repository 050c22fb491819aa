/**
 * Alarms on client counts, one per configured service and bound: fewer or
 * more active client endpoints (ActiveClients) or distinct client IPs
 * (ActiveClientIPs) than the context allows.
 */
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { clientAlarmName, METRICS } from '../contract/resources.js';
import { type ClientCountMetricName, clientCountMetric } from './client-metrics.js';
import type { ServiceAlarmBounds, TreatMissingDataName } from './config.js';

/** Settings of the client-count alarms. */
export interface ClientAlarmsProps {
  /** Prefix of the alarm names (the stack name). */
  alarmNamePrefix: string;
  services: Record<string, ServiceAlarmBounds>;
  evaluationPeriods: number;
  datapointsToAlarm?: number;
  /** Overrides the default missing-data behaviour of every client alarm. */
  treatMissingData?: TreatMissingDataName;
  topic: ITopic;
}

/** One alarm a service's bounds ask for. */
interface BoundSpec {
  key: 'min' | 'max' | 'minIps' | 'maxIps';
  metricName: ClientCountMetricName;
  below: boolean;
}

const BOUNDS: readonly BoundSpec[] = [
  { key: 'min', metricName: METRICS.activeClients, below: true },
  { key: 'max', metricName: METRICS.activeClients, below: false },
  { key: 'minIps', metricName: METRICS.activeClientIps, below: true },
  { key: 'maxIps', metricName: METRICS.activeClientIps, below: false },
];

const MISSING_DATA: Record<TreatMissingDataName, TreatMissingData> = {
  breaching: TreatMissingData.BREACHING,
  notBreaching: TreatMissingData.NOT_BREACHING,
  ignore: TreatMissingData.IGNORE,
  missing: TreatMissingData.MISSING,
};

/** The client-count alarms, all notifying the alarm topic. */
export class ClientAlarms extends Construct {
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: ClientAlarmsProps) {
    super(scope, id);
    const action = new SnsAction(props.topic);
    for (const [service, bounds] of Object.entries(props.services)) {
      const evaluationPeriods = bounds.evaluationPeriods ?? props.evaluationPeriods;
      const datapointsToAlarm = Math.min(
        bounds.datapointsToAlarm ?? props.datapointsToAlarm ?? evaluationPeriods,
        evaluationPeriods,
      );
      for (const spec of BOUNDS) {
        const threshold = bounds[spec.key];
        if (threshold === undefined) continue;
        // With no data point the summarize function saw no client (or did not
        // run): that breaches a minimum but not a maximum, unless told otherwise.
        const missing =
          bounds.treatMissingData ??
          props.treatMissingData ??
          (spec.below ? 'breaching' : 'notBreaching');
        const direction = spec.below ? 'below' : 'above';
        const alarm = new Alarm(this, `${service}-${spec.key}`, {
          alarmName: clientAlarmName(
            props.alarmNamePrefix,
            service,
            spec.metricName,
            spec.below,
            threshold,
          ),
          alarmDescription: `udpwatch: ${spec.metricName} of service "${service}" ${direction} ${threshold}`,
          metric: clientCountMetric(spec.metricName, service, spec.below ? 'Minimum' : 'Maximum'),
          threshold,
          comparisonOperator: spec.below
            ? ComparisonOperator.LESS_THAN_THRESHOLD
            : ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods,
          datapointsToAlarm,
          treatMissingData: MISSING_DATA[missing],
        });
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
        this.alarms.push(alarm);
      }
    }
  }
}
