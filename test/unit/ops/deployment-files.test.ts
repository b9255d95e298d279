import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { validate } from 'dockerfile-utils';

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

it('the Dockerfile lints clean, is multi-stage on a slim Node 22 base and runs ducc serve', () => {
  const dockerfile = read('Dockerfile');

  const problems = validate(dockerfile);

  assert.deepEqual(
    problems.map((p) => `${p.range.start.line + 1}: ${p.message}`),
    [],
  );
  assert.equal(dockerfile.match(/^FROM node:22-[a-z]+-slim/gm)?.length, 2);
  assert.match(dockerfile, /^CMD \["serve"\]$/m);
  assert.match(dockerfile, /^USER node$/m);
  assert.doesNotMatch(dockerfile, /SECRET|TOKEN|PASS/);
});

it("the Dockerfile's build stage copies every file and config that `npm run build` uses", () => {
  const dockerfile = read('Dockerfile');
  const buildStage = dockerfile.slice(0, dockerfile.indexOf('\nFROM ', dockerfile.indexOf('FROM ') + 1));
  const copied = [...buildStage.matchAll(/^COPY (.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
  const build = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts['build']!;
  // Scripts run with node, and tsc's project files (tsconfig.build.json extends tsconfig.json).
  const needed = [...build.matchAll(/\bnode (\S+\.[jt]s)\b/g), ...build.matchAll(/-p (\S+\.json)/g)].map((m) => m[1]!);
  assert.ok(needed.length >= 2, `found only ${needed.join(', ')} in the build script: ${build}`);
  for (const file of [...needed, 'tsconfig.json', 'src']) {
    assert.ok(
      copied.some((c) => c === file || file.startsWith(`${c.replace(/\/$/, '')}/`)),
      `the build stage does not copy ${file} (copies: ${copied.join(' ')})`,
    );
  }
});

it('the systemd units run commands that exist and read the variables they set', () => {
  const mainHelp = read('src/cli/main.ts');
  const units = readdirSync(new URL('../../../systemd/', import.meta.url));
  // Where an operator learns what to put in the EnvironmentFile: the units' comments and the README.
  const documented = units.map((name) => read(`systemd/${name}`)).join('\n') + read('README.md');
  for (const unit of units.filter((name) => name.endsWith('.service'))) {
    const text = read(`systemd/${unit}`);
    const exec = /^ExecStart=\S+ (\S+)/m.exec(text);
    assert.ok(exec, `${unit} has an ExecStart`);
    assert.match(mainHelp, new RegExp(`command\\('${exec[1]}'\\)`), `${unit} runs an existing ducc command`);
    // DUCC's unit set DUCC_RECIPE_FILE but read $RECIPE_FILE: every ${VAR} used must be defined somewhere.
    for (const [, variable] of text.matchAll(/\$\{(\w+)\}/g)) {
      assert.match(documented, new RegExp(`${variable}=`), `${unit} uses \${${variable}} which nothing documents`);
    }
    assert.doesNotMatch(text, /^Environment=\w*(PASS|TOKEN|SECRET)=(?!%d\/)/m, `${unit} puts a secret in the unit`);
  }
});
