import { describe, expect, it } from 'vitest';
import {
  nodeSupportNotice,
  RECOMMENDED_NODE_MAJOR,
  SDK_NODE_NOTICE_OFF,
  silenceSdkNodeNotice,
} from '../../../contract/node-support.js';

describe('nodeSupportNotice', () => {
  it('asks hosts on Node 20 or 21 to upgrade to 22, in one line naming the version', () => {
    for (const version of ['v20.0.0', 'v20.19.5', 'v21.7.3']) {
      const notice = nodeSupportNotice(version);
      expect(notice).toContain(`Node ${version} is end-of-life upstream`);
      expect(notice).toContain('January 2027');
      expect(notice).toContain('Node 22 or later');
      expect(notice).not.toContain('\n');
    }
  });

  it('says nothing on Node 22 and later, nor for a version it cannot read', () => {
    expect(RECOMMENDED_NODE_MAJOR).toBe(22);
    for (const version of ['v22.0.0', 'v22.12.0', 'v24.1.0', 'v100.0.0', 'nightly', '']) {
      expect(nodeSupportNotice(version)).toBeNull();
    }
  });
});

describe('silenceSdkNodeNotice', () => {
  it("turns the AWS SDK's notice off, keeping a value the user set", () => {
    const env: NodeJS.ProcessEnv = {};
    silenceSdkNodeNotice(env);
    expect(env).toEqual({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
    const chosen: NodeJS.ProcessEnv = { [SDK_NODE_NOTICE_OFF]: 'false' };
    silenceSdkNodeNotice(chosen);
    expect(chosen[SDK_NODE_NOTICE_OFF]).toBe('false');
  });
});
