#!/usr/bin/env node
// Development launcher of the `udpwatch` CLI: runs the TypeScript sources
// through tsx (a devDependency). The package's bin is the built dist/udpwatch.js.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
