#!/usr/bin/env node
// udpwatch-agent: the package ships TypeScript sources, so load them through
// tsx's ESM loader, then hand over to the CLI.
import { register } from 'tsx/esm/api';

register();
await import('../agent/cli.ts');
