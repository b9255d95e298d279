#!/usr/bin/env -S node --disable-warning=ExperimentalWarning --max-semi-space-size=4
// The `ducc` command.
//
// --max-semi-space-size=4 (MiB; V8's default lets the young generation grow to 3 × 16 MiB): a conversion
// allocates fast, so the young generation soon reaches its largest size and stays there, ~30 MB of peak
// RSS on the 50,000-small-files bench image (208 -> 170 MB) at no cost in time (bench/results.md).
// Flags on this line apply when ducc.js is run as a program (the npm bin link, systemd units); the
// Dockerfile's ENTRYPOINT repeats them, and the bench reads them from here.
//
// It runs the bundle that `npm run build` makes in dist/bundle/ when that build is newer than every
// source file and package-lock.json: loading TypeScript costs ~0.5 s and ~30 MB at every start (Node's
// type stripping), and the bundle loads in a handful of files instead of ~280 modules
// (scripts/bundle.ts). Without a current build, e.g. while developing, it runs the TypeScript sources
// directly (Node >= 22.18).
import { existsSync, readdirSync, statSync } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';

// V8's code cache for our modules and its dependencies: start-up compiles less. It is
// kept in the user's own ~/.cache, never in a shared temp directory where another user could plant
// code; without a home directory, or if it cannot be written, Node goes on without it.
// NODE_DISABLE_COMPILE_CACHE=1 turns it off.
if (homedir() !== '/' && existsSync(homedir())) module.enableCompileCache?.(`${homedir()}/.cache/ducc-gitops/compile-cache`);

const root = new URL('..', import.meta.url);

/** Newest modification time of the files below a directory. */
function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(`${entry.parentPath}/${entry.name}`).mtimeMs);
  }
  return newest;
}

/** Modification time of a file, 0 if it is missing. */
function mtimeOf(path) {
  try {
    return statSync(new URL(path, root)).mtimeMs;
  } catch {
    return 0;
  }
}

// The bundle holds the npm packages too: after a dependency update (package-lock.json changed, e.g. by
// a git pull or npm update) it is out of date like after a source change, until `npm run build`.
let entry = new URL('src/cli/main.ts', root);
try {
  const built = statSync(new URL('dist/.build-stamp', root)).mtimeMs;
  const inputs = Math.max(newestMtime(new URL('src/', root)), mtimeOf('package-lock.json'), mtimeOf('scripts/bundle.ts'));
  if (built >= inputs) entry = new URL('dist/bundle/main.js', root);
} catch {
  // No build: run the sources.
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
