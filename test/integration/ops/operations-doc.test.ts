/**
 * docs/operations.md (issue 17 point 14) says what is true: it names every unit, its backup command makes
 * a copy of a live state database with its write-ahead log that the bot can open, its alert rules use
 * metrics that /metrics has, and its reverse proxy exposes endpoints that exist.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { SqliteStateStore } from '../../../src/state/sqlite-store.ts';
import { botConfig, startTestBot } from '../../support/bot-harness.ts';
import { tempDir } from '../../support/tmp-dir.ts';

const run = promisify(execFile);
const CLONE = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const DOC = readFileSync(join(CLONE, 'docs/operations.md'), 'utf8');

/** The fenced blocks of one language. */
function blocks(language: string): string[] {
  return [...DOC.matchAll(new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => {
    // Blocks inside a list item are indented as a whole.
    const lines = m[1]!.split('\n');
    const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)![0].length));
    return lines.map((l) => l.slice(indent)).join('\n');
  });
}

it('names every unit and drop-in of systemd/', () => {
  for (const file of readdirSync(join(CLONE, 'systemd'))) assert.ok(DOC.includes(`systemd/${file}`), `docs/operations.md does not mention systemd/${file}`);
});

it('its backup command copies a live state database, write-ahead log included, into one the bot opens', async (t) => {
  const dir = await tempDir(t, 'ducc-backup-');
  const live = join(dir, 'ducc-gitops.db');
  const store = SqliteStateStore.open(live);
  t.after(() => store.close());
  for (let i = 0; i < 20; i++) await store.enqueue({ kind: 'reconcile', wishlist: `list-${i}` }, { now: 1000 + i });
  assert.ok((await stat(`${live}-wal`)).size > 0, 'the jobs are still in the write-ahead log');
  const line = blocks('sh')
    .flatMap((block) => block.split('\n'))
    .find((l) => l.includes('.backup'));
  assert.ok(line, 'the doc shows a backup command');
  const backup = join(dir, 'backup.db');
  const argv = line
    .replace('/var/lib/ducc-gitops/ducc-gitops.db', live)
    .replace('/var/backups/ducc-gitops.db', backup)
    .match(/"[^"]*"|\S+/g)!
    .map((word) => word.replace(/^"(.*)"$/, '$1'));

  await run(argv[0]!, argv.slice(1));
  const restored = SqliteStateStore.open(backup);
  const jobs = await restored.listJobs();
  await restored.close();

  assert.equal(jobs.length, 20);
});

it('its alert rules use metrics that /metrics has, and its proxy exposes endpoints that exist', async (t) => {
  const bot = await startTestBot(t, (root) => botConfig(root, [{}]));
  const metrics = await (await fetch(`${bot.url}/metrics`)).text();
  const rules = (parse(blocks('yaml')[0]!) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);
  const locations = [...blocks('nginx')[0]!.matchAll(/location (=\s*)?(\/\S*)/g)].map((m) => m[2]!);

  assert.ok(rules.length >= 3);
  for (const rule of rules) {
    for (const [name] of rule.expr.matchAll(/\bducc_\w+/g))
      assert.match(metrics, new RegExp(`^# TYPE ${name} `, 'm'), `${rule.alert}: ${name} is not exported`);
  }
  for (const path of locations) {
    const response = await fetch(`${bot.url}${path === '/hooks/' ? '/hooks/github' : path}`, { method: path === '/hooks/' ? 'POST' : 'GET' });
    assert.notEqual(response.status, 404, `${path} is not an endpoint`);
  }
  assert.ok(locations.includes('/hooks/'));
});
