// Loads the compiled addon. Search order: $DETSEG3D_ADDON (a .node file),
// $DETSEG3D_BUILD_DIR/Release, then build/Release (via `bindings`).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
/** Package root (this file is src/native.ts or dist/native.js). */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// The addon's raw surface is typed loosely here; each TypeScript module that
// wraps a part of it declares the precise signatures it uses.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = any;

function load(): NativeAddon {
  const explicit = process.env.DETSEG3D_ADDON;
  if (explicit) return require(resolve(explicit));
  const dir = process.env.DETSEG3D_BUILD_DIR;
  if (dir) {
    for (const cfg of ['Release', 'Debug']) {
      const p = join(resolve(packageRoot, dir), cfg, 'detseg3d.node');
      if (existsSync(p)) return require(p);
    }
  }
  try {
    const bindings = require('bindings');
    return bindings({ bindings: 'detseg3d.node', module_root: packageRoot });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(
      `detseg3d: the native addon is not built (${msg.split('\n')[0]}). ` +
        'Run `npm install` (or `npm run build`) in the package directory; a C++17 compiler and CMake >= 3.18 are needed.',
    );
  }
}

export const native: NativeAddon = load();
