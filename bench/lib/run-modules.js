/**
 * Runs the CLI from tsc's per-module output in dist/ instead of the bundle bin/ducc.js runs, for the
 * CPU profile: there every function keeps the name of its module (dist/unpack/extract-layer.js ...),
 * so time can be attributed per module. The bundle runs the same code; it differs in start-up only.
 * Plain JavaScript, like bin/ducc.js: a TypeScript entry would load Node's type stripper into the profile.
 */
import module from 'node:module';
import { homedir } from 'node:os';

// The same compile cache as bin/ducc.js, so that start-up compiles about as much as there.
module.enableCompileCache?.(`${homedir()}/.cache/ducc-gitops/compile-cache`);
const { main } = await import(new URL('../../dist/cli/main.js', import.meta.url).href);
process.exitCode = await main(process.argv);
