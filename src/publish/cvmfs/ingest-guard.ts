/**
 * The guard between ducc-gitops and `cvmfs_server ingest`: a small Node process that runs the ingest and
 * lets it see the end of its input only when ducc-gitops confirms that the tar is complete.
 *
 * Why: `cvmfs_server ingest -t -` publishes whatever it has read when its stdin ends, and libarchive
 * takes a tar that stops between two entries (no end-of-archive blocks) as a complete archive — checked
 * on CernVM-FS 2.12: a tar cut after its first entry publishes that entry. If ducc-gitops died while
 * streaming (SIGKILL, OOM), the kernel would close the pipe and a part of a layer or of a flat tree
 * would be published under its final name. So the tar goes through this guard:
 *
 * - the guard is started in its own session (process group), and runs `cvmfs_server` in that group;
 * - tar bytes arrive on its stdin and are passed on; its stdin's end is passed on only after the word
 *   `commit` arrived on fd 3, which ducc-gitops writes once the last byte of the tar was handed over;
 * - if fd 3 closes without `commit` — ducc-gitops died, or gave up on purpose (a digest mismatch) — the
 *   guard kills its whole process group (the ingest's bash and swissknife) with SIGKILL before the
 *   ingest can see an end of input. The repository is left in a transaction, which the next
 *   `recover()` aborts with `cvmfs_server abort -f` (also checked on 2.12).
 *
 * Its exit status is the ingest's; stdout and stderr are the ingest's own (inherited).
 * Plain JavaScript with Node's built-ins only: it runs as `node -e GUARD_SOURCE -- cvmfs_server ...`,
 * so it needs no file of its own next to the bundle.
 */
export const GUARD_SOURCE = String.raw`
'use strict';
const { spawn } = require('node:child_process');
const { createReadStream } = require('node:fs');
const [command, ...args] = process.argv.slice(1);
const child = spawn(command, args, { stdio: ['pipe', 'inherit', 'inherit'] });
let committed = false;
let inputEnded = false;
let controlText = '';
const killGroup = () => { try { process.kill(-process.pid, 'SIGKILL'); } catch { process.kill(process.pid, 'SIGKILL'); } };
const settle = () => { if (committed && inputEnded) child.stdin.end(); };
child.stdin.on('error', () => {});
child.on('error', (error) => { process.stderr.write('cannot run ' + command + ': ' + error.message + '\n'); process.exit(127); });
child.on('exit', (code, signal) => process.exit(code === null ? 128 + (require('node:os').constants.signals[signal] || 9) : code));
process.stdin.on('end', () => { inputEnded = true; settle(); });
process.stdin.pipe(child.stdin, { end: false });
const control = createReadStream('', { fd: 3 });
control.on('data', (chunk) => { controlText += chunk.toString('latin1'); if (/commit\n/.test(controlText)) { committed = true; settle(); } });
control.on('error', () => { if (!committed) killGroup(); });
control.on('end', () => { if (!committed) killGroup(); });
`;
