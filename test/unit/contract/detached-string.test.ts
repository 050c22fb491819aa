import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { detached } from '../../../contract/detached-string.js';

test.prop([fc.string({ unit: 'binary', maxLength: 200 })])(
  'detached copies any string exactly, lone surrogates and control characters too',
  (text) => {
    expect(detached(text)).toBe(text);
  },
);
