import { describe, expect, it } from 'vitest';
import {
  cgroupPath,
  nameFromCgroup,
  processName,
  scriptFromArgs,
} from '../../../agent/process-identity.js';

describe('process names a person recognizes', () => {
  it('takes the systemd unit or container from the cgroup, deepest first', () => {
    expect(nameFromCgroup('/system.slice/dnsmasq.service')).toBe('dnsmasq.service');
    expect(
      nameFromCgroup('/user.slice/user-1000.slice/user@1000.service/app.slice/relay.service'),
    ).toBe('relay.service');
    // The user manager itself and sessions are no service of their own.
    expect(
      nameFromCgroup('/user.slice/user-1000.slice/user@1000.service/init.scope'),
    ).toBeUndefined();
    expect(nameFromCgroup('/user.slice/user-0.slice/session-4.scope')).toBeUndefined();
    const id = '3f4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081';
    expect(nameFromCgroup(`/system.slice/docker-${id}.scope`)).toBe('docker-3f4e5a6b7c8d');
    expect(nameFromCgroup(`/kubepods.slice/kubepods-pod1.slice/cri-containerd-${id}.scope`)).toBe(
      'containerd-3f4e5a6b7c8d',
    );
    expect(nameFromCgroup(`/machine.slice/libpod-${id}.scope/container`)).toBe(
      'podman-3f4e5a6b7c8d',
    );
    expect(nameFromCgroup(`/docker/${id}`)).toBe('container-3f4e5a6b7c8d');
    expect(nameFromCgroup('/')).toBeUndefined();
  });

  it('reads the unified hierarchy, else systemd v1 on a hybrid host', () => {
    expect(
      cgroupPath(
        '12:pids:/x\n1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n',
      ),
    ).toBe('/system.slice/b.service');
    expect(cgroupPath('4:memory:/m\n1:name=systemd:/system.slice/a.service\n')).toBe(
      '/system.slice/a.service',
    );
    expect(cgroupPath('')).toBeUndefined();
  });

  it('names an interpreter by its script or module, skipping options and their values', () => {
    expect(scriptFromArgs(['python3', '-m', 'http.server', '8000'])).toBe('http.server');
    expect(
      scriptFromArgs(['/usr/bin/python3.11', '-u', '-W', 'ignore', '/srv/dns/resolver.py']),
    ).toBe('resolver');
    expect(scriptFromArgs(['node', '/srv/app/dns.mjs'])).toBe('dns');
    expect(
      scriptFromArgs(['node', '--import', './hook.mjs', '--max-old-space-size=512', 'relay.js']),
    ).toBe('relay');
    // A generic file name: its directory tells the service.
    expect(scriptFromArgs(['node', '/srv/turn-relay/index.js'])).toBe('turn-relay');
    expect(scriptFromArgs(['java', '-Xmx1g', '-jar', '/opt/sip/sip-proxy.jar'])).toBe('sip-proxy');
    expect(scriptFromArgs(['java', '-cp', '/opt/lib/*', 'com.example.DnsServer'])).toBe(
      'DnsServer',
    );
    expect(scriptFromArgs(['deno', 'run', '--allow-net', 'stun.ts'])).toBe('stun');
    expect(scriptFromArgs(['bun', 'run', 'game.ts'])).toBe('game');
    expect(scriptFromArgs(['ruby', '-I', 'lib', 'bin/syslogd.rb'])).toBe('syslogd');
    // Inline code, a REPL, no interpreter: nothing to name it by.
    expect(scriptFromArgs(['node', '-e', 'require("dgram")'])).toBeUndefined();
    expect(scriptFromArgs(['python3', '-c', 'import socket'])).toBeUndefined();
    expect(scriptFromArgs(['python3'])).toBeUndefined();
    expect(scriptFromArgs(['/usr/sbin/unbound', '-d'])).toBeUndefined();
  });

  it('keeps names printable and short whatever the command line holds', () => {
    const evil = `/srv/a\u0001b\u001b[31m${'x'.repeat(5000)}.py`;
    const name = scriptFromArgs(['python3', evil])!;
    expect(name).not.toMatch(/[\u0000-\u001f\u007f-\u009f\s]/);
    expect(name.length).toBeLessThanOrEqual(100);
    expect(processName('', ['unbound'], 'unbound\u0007')).toBe('unbound');
    expect(processName('', [], '')).toBe('unknown');
    // The unit wins over the script, the script over comm.
    expect(processName('0::/system.slice/dns.service\n', ['python3', 'x.py'], 'python3')).toBe(
      'dns.service',
    );
    expect(processName('0::/user.slice\n', ['python3', 'x.py'], 'python3')).toBe('x');
  });
});
