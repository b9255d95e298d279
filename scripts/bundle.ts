/**
 * `npm run build`, second step: bundles the program (from src/) into dist/bundle/, which bin/ducc.js runs.
 *
 * Why a bundle: `ducc convert` loads ~280 modules (undici alone ~110, yaml ~70). Finding, reading and
 * compiling them one by one took ~120 ms of every start, the largest part of start-up; from a handful
 * of bundled files it takes ~60 ms. That start-up is paid by every CLI run and every timer-driven
 * reconcile. esbuild does the bundling (it reads the TypeScript sources directly); tsc's output in
 * dist/ is kept for debugging and for the benchmark's per-module profile.
 *
 * Layout: every output file sits in dist/bundle/ itself, entry points and shared chunks alike, so that
 * module-relative URLs keep working from whichever chunk ends up holding the code: the writer thread's
 * module (`./file-writer-worker.js`), the conversion thread's of `ducc serve` (`./conversion-worker.js`) and package.json (`../../package.json`, the same depth as from
 * dist/cli/). The `serve` command's web stack (express, octokit, gitbeaker) is imported on demand in
 * main.ts and so lands in its own chunk, which `convert` never loads.
 */
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { build } from 'esbuild';

// An output directory other than dist/bundle/ may be given (the tests bundle into a temp directory).
const outdir = process.argv[2] === undefined ? new URL('../dist/bundle/', import.meta.url).pathname : resolve(process.argv[2]);
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: {
    main: new URL('../src/cli/main.ts', import.meta.url).pathname,
    'file-writer-worker': new URL('../src/unpack/file-writer-worker.ts', import.meta.url).pathname,
    'conversion-worker': new URL('../src/bot/conversion-worker.ts', import.meta.url).pathname,
  },
  outdir,
  bundle: true,
  splitting: true,
  chunkNames: '[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node22',
  // The CommonJS packages in the bundle (undici, pino, yaml ...) call require() for Node's own modules.
  banner: { js: "import { createRequire as bundleCreateRequire } from 'node:module'; const require = bundleCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
