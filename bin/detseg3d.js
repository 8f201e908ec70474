#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

main().catch((err) => {
  console.error(`detseg3d: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
