#!/usr/bin/env -S node --max-semi-space-size=4 --initial-old-space-size=64
// The `ducc` command.
//
// First it checks that this Node.js is new enough (package.json's engines): on an older one the program
// would fail later with a SyntaxError about a missing export, or print nothing at all. The shebang passes
// only V8 options every Node.js knows, so that even an old one gets as far as saying so.
//
// --max-semi-space-size=4 (MiB; V8's default lets the young generation grow to 3 × 16 MiB): a conversion
// allocates fast, so the young generation soon reaches its largest size and stays there, ~30 MB of peak
// RSS on the 50,000-small-files bench image (208 -> 170 MB) at no cost in time (bench/results.md). It
// must be given when node starts: the systemd units' ExecStart and the Dockerfile's ENTRYPOINT repeat it
// (test/integration/cli/node-version.test.ts checks they agree), and the bench reads it from here.
//
// --initial-old-space-size=64 (MiB): every Buffer a conversion allocates (1 MiB of decompressed layer, a
// network read) counts towards V8's limit for a full garbage collection, so with the default initial limit
// a Debian image of 240 MiB triggered 8 full collections, each marking the whole heap on threads that
// compete with the conversion for the cores. With 64 MiB it takes 2 (it is a starting limit, not a
// reservation: memory is taken as before, only collected in fewer rounds). Measured on the bench images, 2
// cores, 6-10 interleaved runs, medians: Debian zstd layers only 0.95 -> 0.88-0.90 s from an OCI layout and
// 1.09 -> 1.01 s from the registry; Debian gzip, layers + flat from the registry, 1.54 -> 1.35 s; 50,000
// small files and the 1 GiB file unchanged; peak RSS within 4 MB of before, into tmpfs and into an ext4
// directory.
//
// It runs the bundle that `npm run build` makes in dist/bundle/ when that build is newer than every
// source file and package-lock.json: loading TypeScript costs ~0.5 s and ~30 MB at every start (Node's
// type stripping), and the bundle loads in a handful of files instead of ~280 modules
// (scripts/bundle.ts). Without a current build, e.g. while developing, it runs the TypeScript sources
// directly (Node >= 22.18).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = new URL('..', import.meta.url);

/** `>=22.19` from package.json's engines, as [22, 19]. */
function requiredNode() {
  const range = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).engines?.node ?? '';
  const match = /^>=\s*(\d+)(?:\.(\d+))?/.exec(range);
  return match ? [Number(match[1]), Number(match[2] ?? 0)] : [0, 0];
}

const [needMajor, needMinor] = requiredNode();
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < needMajor || (major === needMajor && minor < needMinor)) {
  const clone = fileURLToPath(root).replace(/\/$/, '');
  process.stderr.write(
    `ducc: this is Node.js ${process.versions.node} (${process.execPath}); ducc-gitops needs Node.js >= ${needMajor}.${needMinor}.\n` +
      `  Run ${clone}/scripts/with-deps true: it installs Node.js ${needMajor} where it is missing and links it as ${clone}/.node/bin/node.\n` +
      `  Then run ducc with that Node: ${clone}/.node/bin/node ${clone}/bin/ducc.js ARGS (the systemd units do), or as scripts/with-deps npx ducc ARGS.\n`,
  );
  process.exit(1);
}

// node:sqlite (ducc serve) says it is experimental on every start; other warnings are shown as Node shows them.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name !== 'ExperimentalWarning') process.stderr.write(`(node:${process.pid}) ${warning.name}: ${warning.message}\n`);
});

// V8's code cache for our modules and its dependencies: start-up compiles less. It is
// kept in the user's own ~/.cache, never in a shared temp directory where another user could plant
// code; without a home directory, or if it cannot be written, Node goes on without it.
// NODE_DISABLE_COMPILE_CACHE=1 turns it off.
if (homedir() !== '/' && existsSync(homedir())) module.enableCompileCache?.(`${homedir()}/.cache/ducc-gitops/compile-cache`);

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
