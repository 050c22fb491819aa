#!/usr/bin/env node
// Development launcher of udpwatch-agent: runs the TypeScript sources through
// tsx (a devDependency). The package's bin is the built dist/udpwatch-agent.js.
import { register } from 'tsx/esm/api';

register();
await import('../agent/main.ts');
