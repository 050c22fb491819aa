/**
 * The alarms must name exactly the dimension sets the functions' EMF
 * documents carry, or CloudWatch never matches them. Powertools Metrics,
 * configured as the function configures it, writes real EMF here; the alarm
 * metrics are compared against it.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Duration } from 'aws-cdk-lib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { METRICS, RESOURCE_NAMES } from '../../../contract/resources.js';
import {
  agentsReportingMetric,
  clientCountMetric,
  pipelineCountMetric,
} from '../../../infra/client-metrics.js';

interface EmfDocument {
  _aws: {
    CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[];
  };
  [key: string]: unknown;
}

/** Runs `emit` and returns the EMF documents Powertools printed meanwhile. */
function captureEmf(emit: () => void): EmfDocument[] {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    emit();
  } finally {
    spy.mockRestore();
  }
  return lines
    .join('')
    .split('\n')
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as EmfDocument);
}

/** The dimension name -> value map an EMF document gives one of its metrics. */
function dimensionsOf(doc: EmfDocument, metricName: string) {
  const directive = doc._aws.CloudWatchMetrics.find((d) =>
    d.Metrics.some((m) => m.Name === metricName),
  );
  expect(directive, metricName).toBeDefined();
  expect(directive!.Namespace).toBe(RESOURCE_NAMES.metricsNamespace);
  expect(directive!.Dimensions).toHaveLength(1);
  return Object.fromEntries(directive!.Dimensions[0]!.map((name) => [name, doc[name]]));
}

afterEach(() => vi.restoreAllMocks());

describe('alarm metrics match the EMF the summarize function writes', () => {
  const docs = captureEmf(() => {
    const metrics = new Metrics({
      namespace: RESOURCE_NAMES.metricsNamespace,
      serviceName: RESOURCE_NAMES.powertoolsService,
    });
    // A single metric flushes on its first addMetric and drops its extra
    // dimensions then, so each per-service metric needs its own.
    for (const name of [METRICS.activeClients, METRICS.activeClientIps]) {
      const single = metrics.singleMetric();
      single.addDimension(METRICS.serviceDimension, 'dns');
      single.addMetric(name, MetricUnit.Count, 7);
    }
    metrics.addMetric(METRICS.agentsReporting, MetricUnit.Count, 2);
    metrics.publishStoredMetrics();
  });

  it('per-service client counts', () => {
    for (const name of [METRICS.activeClients, METRICS.activeClientIps] as const) {
      const doc = docs.find((d) => d[name] !== undefined)!;
      const alarmMetric = clientCountMetric(name, 'dns', 'Minimum');
      expect(alarmMetric.namespace).toBe(RESOURCE_NAMES.metricsNamespace);
      expect(alarmMetric.dimensions).toEqual(dimensionsOf(doc, name));
    }
  });

  it('agents reporting', () => {
    const doc = docs.find((d) => d[METRICS.agentsReporting] !== undefined)!;
    expect(agentsReportingMetric().dimensions).toEqual(dimensionsOf(doc, METRICS.agentsReporting));
  });
});

describe('alarm metrics match the EMF the aggregate function writes', () => {
  // The aggregator counts on its handler-wide Metrics object, flushed once per batch.
  const docs = captureEmf(() => {
    const metrics = new Metrics({
      namespace: RESOURCE_NAMES.metricsNamespace,
      serviceName: RESOURCE_NAMES.powertoolsService,
    });
    metrics.addMetric(METRICS.badRecords, MetricUnit.Count, 1);
    metrics.addMetric(METRICS.blockConflicts, MetricUnit.Count, 2);
    metrics.publishStoredMetrics();
  });

  it('bad records and block conflicts', () => {
    for (const name of [METRICS.badRecords, METRICS.blockConflicts] as const) {
      const doc = docs.find((d) => d[name] !== undefined)!;
      const alarmMetric = pipelineCountMetric(name, Duration.minutes(5));
      expect(alarmMetric.namespace).toBe(RESOURCE_NAMES.metricsNamespace);
      expect(alarmMetric.metricName).toBe(name);
      expect(alarmMetric.dimensions).toEqual(dimensionsOf(doc, name));
    }
  });
});
