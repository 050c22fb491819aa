import { describe, expect, it } from 'vitest';
import { decodeRecord } from '../../../contract/codec.js';
import { LineSchema } from '../../../contract/wire.js';
import { PortInUseError } from '../../../local/emulators.js';
import {
  DEFAULT_LOCAL_PORTS,
  exampleFlowLine,
  parseStartFlags,
  portInUseMessage,
  readyMessage,
  UsageError,
} from '../../../local/start.js';

describe('npm start flags', () => {
  it('defaults to the documented ports on 127.0.0.1, in memory', () => {
    expect(parseStartFlags([])).toMatchObject({
      kinesisPort: 4567,
      dynamodbPort: 4568,
      apiPort: 7787,
      host: '127.0.0.1',
      dataDir: undefined,
      demo: false,
      demoPort: 5300,
      agent: true,
      alarms: {},
      alarmPeriodSeconds: 60,
      verbose: false,
      help: false,
    });
    expect(DEFAULT_LOCAL_PORTS).toEqual({ kinesis: 4567, dynamodb: 4568, api: 7787 });
  });

  it('reads every flag', () => {
    expect(
      parseStartFlags([
        '--kinesis-port',
        '1001',
        '--dynamodb-port=1002',
        '--api-port',
        '1003',
        '--host',
        '::1',
        '--data-dir',
        '/tmp/x',
        '--demo',
        '--demo-port',
        '6000',
        '--no-agent',
        '--agent-state-dir',
        '/tmp/a',
        '--hook-socket',
        '/tmp/h.sock',
        '--alarms',
        '{"dns":{"min":"3","maxIps":9}}',
        '--alarm-period',
        '5',
        '--verbose',
        '-h',
      ]),
    ).toEqual({
      kinesisPort: 1001,
      dynamodbPort: 1002,
      apiPort: 1003,
      host: '::1',
      dataDir: '/tmp/x',
      demo: true,
      demoPort: 6000,
      agent: false,
      agentStateDir: '/tmp/a',
      hookSocket: '/tmp/h.sock',
      alarms: { dns: { min: 3, maxIps: 9 } },
      alarmPeriodSeconds: 5,
      verbose: true,
      help: true,
    });
  });

  it.each([
    [['--alarms', '{nope'], /--alarms is not JSON/],
    [['--alarms', '{"dns":{"min":5,"max":1}}'], /--alarms dns: min must not exceed max/],
    [['--alarms', '{"dns":{}}'], /give at least one of min, max/],
    [['--alarms', '@/nonexistent/alarms.json'], /--alarms: cannot read \/nonexistent\/alarms.json/],
    [['--alarm-period', '0'], /--alarm-period must be 1-3600 seconds/],
    [['--demo-port', 'x'], /--demo-port must be a port/],
  ])('rejects alarm and demo flags %j with a clear message', (argv, message) => {
    expect(() => parseStartFlags(argv)).toThrow(message);
  });

  it.each([
    [['--api-port', 'abc'], /--api-port must be a port number 1-65535, got "abc"/],
    [['--kinesis-port', '70000'], /--kinesis-port must be a port/],
    [['--dynamodb-port', '0'], /--dynamodb-port must be a port/],
    [['--dynamodb-port', '12.5'], /--dynamodb-port must be a port/],
    [['--nope'], /nope/],
    [['extra'], /extra/],
  ])('rejects %j with a clear UsageError', (argv, message) => {
    expect(() => parseStartFlags(argv)).toThrow(UsageError);
    expect(() => parseStartFlags(argv)).toThrow(message);
  });

  it('names the flag that moves a taken port', () => {
    expect(portInUseMessage(new PortInUseError('Kinesis', '127.0.0.1', 4567))).toBe(
      'Kinesis port 127.0.0.1:4567 is already in use; choose another with --kinesis-port <port> (e.g. npm start -- --kinesis-port 4667)',
    );
    expect(portInUseMessage(new PortInUseError('DynamoDB', '127.0.0.1', 4568))).toContain(
      '--dynamodb-port',
    );
    expect(portInUseMessage(new PortInUseError('API', '127.0.0.1', 7787))).toContain('--api-port');
  });
});

describe('ready message', () => {
  const at = {
    apiUrl: 'http://127.0.0.1:7787',
    kinesisEndpoint: 'http://127.0.0.1:4567',
    dynamodbEndpoint: 'http://127.0.0.1:4568',
    streamName: 'udpwatch-connection-logs',
    tableName: 'udpwatch-clients',
  };

  it('says where everything listens', () => {
    const text = readyMessage(at, 1_800_000_000_000);
    expect(text).toContain('HTTP API   http://127.0.0.1:7787');
    expect(text).toContain('Kinesis    http://127.0.0.1:4567   stream udpwatch-connection-logs');
    expect(text).toContain('DynamoDB   http://127.0.0.1:4568   table  udpwatch-clients');
    expect(text).toContain('in memory');
    expect(readyMessage({ ...at, dataDir: '/var/tmp/uw' })).toContain('on disk in /var/tmp/uw');
  });

  it('gives an AWS CLI example whose record the contract decoder accepts', () => {
    const text = readyMessage(at, 1_800_000_000_000);
    expect(text).toContain('aws kinesis put-record --endpoint-url http://127.0.0.1:4567');
    const data = /--data '([^']+)'/.exec(text)?.[1];
    expect(data).toBeDefined();
    expect(LineSchema.safeParse(JSON.parse(data ?? '')).success).toBe(true);
    const decoded = decodeRecord(Buffer.from(data ?? ''));
    expect(decoded.errors).toEqual([]);
    expect(decoded.lines).toHaveLength(1);
    expect(exampleFlowLine(5).lastSeen).toBe(5);
  });
});
