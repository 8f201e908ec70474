// Locating the loader's worker script.
//
// From the compiled package (dist/) the worker is the sibling file
// loader_worker.js. When detseg3d runs from its TypeScript sources (vitest,
// which transforms TS for the main thread only: plain worker_threads Workers
// get no TypeScript support, and Node 20 cannot strip types itself), the
// worker and every module it imports (pure TypeScript under src/data and
// src/io, no native addon) are transpiled once with the TypeScript compiler API into
// node_modules/.cache/detseg3d-worker/<content hash>/. That folder sits inside
// the package so `nifti-reader-js` resolves from it, and gets its own
// package.json marking the files as ES modules.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The worker entry and every relative module it imports (transitively), as paths relative to src/. */
function workerSources(srcDir: string): Array<{ rel: string; text: string }> {
  const out = new Map<string, string>();
  const todo = ['data/loader_worker.ts'];
  while (todo.length) {
    const rel = todo.pop()!;
    if (out.has(rel)) continue;
    const text = readFileSync(join(srcDir, rel), 'utf8');
    out.set(rel, text);
    // import / export ... from './x.js' (type-only imports are erased by the transpiler but harmless to include)
    for (const m of text.matchAll(/\bfrom\s+'(\.{1,2}\/[^']+)\.js'/g)) {
      const dep = posix.normalize(posix.join(posix.dirname(rel), `${m[1]}.ts`));
      if (dep.startsWith('..')) throw new Error(`loader worker: ${rel} imports ${m[1]} outside src/`);
      todo.push(dep);
    }
  }
  return [...out].sort(([a], [b]) => (a < b ? -1 : 1)).map(([rel, text]) => ({ rel, text }));
}

/** URL of the worker entry for the loader module at `moduleUrl`. */
export async function workerScriptUrl(moduleUrl: string): Promise<URL> {
  if (!moduleUrl.endsWith('.ts')) return new URL('./loader_worker.js', moduleUrl);
  const srcDir = dirname(dirname(fileURLToPath(moduleUrl)));
  const pkgRoot = dirname(srcDir);
  const files = workerSources(srcDir);
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f.rel}\0${f.text}\0`);
  const outDir = join(pkgRoot, 'node_modules', '.cache', 'detseg3d-worker', hash.digest('hex').slice(0, 20));
  const entry = join(outDir, 'data', 'loader_worker.js');
  if (!existsSync(entry)) {
    const ts = (await import('typescript')).default;
    const tmp = `${outDir}.${process.pid}.${Date.now()}.tmp`;
    for (const f of files) {
      const js = ts.transpileModule(f.text, {
        compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, sourceMap: false },
        fileName: f.rel,
      }).outputText;
      const out = join(tmp, f.rel.replace(/\.ts$/, '.js'));
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, js);
    }
    writeFileSync(join(tmp, 'package.json'), '{ "type": "module" }\n');
    try {
      renameSync(tmp, outDir);
    } catch {
      // Another process produced the same content-addressed folder first.
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(entry)) throw new Error(`loader: cannot prepare the TypeScript worker in ${outDir}`);
    }
  }
  return pathToFileURL(entry);
}
