#!/usr/bin/env node
// The `udpwatch` query CLI; its TypeScript runs through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
