// Expected strings marked "Go:" were produced by running DUCC's own InsertEnv / ArgsQuoted / Escape
// code and fmt.Sprintf("%q") under Go.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  APPTAINER_FILES,
  apptainerEntries,
  hasApptainerFiles,
  argsQuoted,
  formatDockerEnv,
  flatRootModeAfterApptainer,
  formatRunscript,
  goQuote,
  shellEscape,
  type GeneratedEntry,
} from '../../../src/apptainer/apptainer-files.ts';
import * as scripts from '../../../src/apptainer/sylabs-scripts.ts';

const execFileAsync = promisify(execFile);

async function writeEntries(root: string, entries: readonly GeneratedEntry[]): Promise<void> {
  for (const entry of entries) {
    const path = join(root, entry.path);
    if (entry.type === 'directory') {
      await mkdir(path, { mode: entry.mode });
      await chmod(path, entry.mode);
    } else if (entry.type === 'file') {
      await writeFile(path, entry.content, { mode: entry.mode });
      await chmod(path, entry.mode);
    } else {
      await symlink(entry.target, path);
    }
  }
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'ducc-apptainer-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function runscriptOutput(config: Parameters<typeof apptainerEntries>[0], args: string[] = []): Promise<string> {
  return withTempDir(async (root) => {
    await writeEntries(
      root,
      apptainerEntries(config, () => false),
    );
    const { stdout } = await execFileAsync('/bin/sh', [join(root, '.singularity.d/runscript'), ...args], {
      env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' },
    });
    return stdout;
  });
}

describe('formatRunscript (InsertRunScript)', () => {
  it('writes empty assignments when there is no ENTRYPOINT/CMD', () => {
    assert.equal(formatRunscript(null, undefined), `#!/bin/sh\nOCI_ENTRYPOINT=''\nOCI_CMD=''\n${scripts.RUNSCRIPT_TAIL}`);
    assert.equal(formatRunscript([], []), formatRunscript(null, null));
  });
  it('quotes each argument and escapes \\ " ` $ (single quotes are not escaped)', () => {
    const text = formatRunscript(['/bin/sh', '-c', 'echo "$HOME" `id` \\ it\'s'], ['']);
    assert.equal(text.split('\n')[1], `OCI_ENTRYPOINT='"/bin/sh" "-c" "echo \\"\\$HOME\\" \\\`id\\\` \\\\ it's"'`);
    assert.equal(text.split('\n')[2], `OCI_CMD='""'`);
  });
  it('accepts a string like Docker strslice', () => {
    assert.equal(formatRunscript('/entry', 'cmd').split('\n').slice(1, 3).join('\n'), `OCI_ENTRYPOINT='"/entry"'\nOCI_CMD='"cmd"'`);
  });
  it('ends with the Sylabs block', () => {
    assert.ok(formatRunscript(['a'], ['b']).endsWith('eval "set ${SINGULARITY_OCI_RUN}"\nexec "$@"\n'));
  });
  it('argsQuoted and shellEscape match Singularity (Go)', () => {
    assert.equal(argsQuoted(['/bin/echo', 'hi']), '"/bin/echo" "hi"');
    assert.equal(argsQuoted(['', ' a ', 'x"y\\z$w`v`', "it's"]), '"" " a " "x\\"y\\\\z\\$w\\`v\\`" "it\'s"');
    assert.equal(shellEscape('\\"`$'), '\\\\\\"\\`\\$');
  });
});

describe('runscript behaviour under /bin/sh', () => {
  it('runs ENTRYPOINT + CMD: ["/bin/echo","hi"] + ["there"] prints "hi there"', async () => {
    assert.equal(await runscriptOutput({ Entrypoint: ['/bin/echo', 'hi'], Cmd: ['there'] }), 'hi there\n');
  });
  it('replaces CMD with the arguments, keeping their spaces', async () => {
    assert.equal(await runscriptOutput({ Entrypoint: ['/bin/echo', 'hi'], Cmd: ['there'] }, ['you', 'x  y']), 'hi you x  y\n');
  });
  it('runs CMD alone without expanding $ or backquotes', async () => {
    assert.equal(await runscriptOutput({ Cmd: ['/bin/echo', 'a  b', '$HOME', '`id`'] }), 'a  b $HOME `id`\n');
  });
});

describe('formatDockerEnv (InsertEnv)', () => {
  it('writes the ducc.md examples', () => {
    assert.equal(
      formatDockerEnv(['PATH=/usr/local/sbin:/usr/local/bin', 'LANG=C.UTF-8', 'FOO']),
      '#!/bin/sh\nexport PATH="/usr/local/sbin:/usr/local/bin"\nexport LANG="${LANG:-"C.UTF-8"}"\nexport FOO="${FOO:-}"\n',
    );
    assert.equal(formatDockerEnv(null), '#!/bin/sh\n');
  });
  it('matches Go on edge cases, %q doubling the escape backslashes (Go)', () => {
    assert.equal(
      formatDockerEnv(['PATH=/usr/local/sbin:/usr/local/bin', 'LANG=C.UTF-8', 'FOO', 'EMPTY=', '=x', '', 'A=b=c', 'W=a\\b"c$d`e`', 'U=é\u00a0\n']),
      '#!/bin/sh\nexport PATH="/usr/local/sbin:/usr/local/bin"\nexport LANG="${LANG:-"C.UTF-8"}"\nexport FOO="${FOO:-}"\nexport EMPTY="${EMPTY:-""}"\nexport ="${:-"x"}"\nexport ="${:-}"\nexport A="${A:-"b=c"}"\nexport W="${W:-"a\\\\\\\\b\\\\\\"c\\\\$d\\\\`e\\\\`"}"\nexport U="${U:-"\u00e9\\u00a0\\n"}"\n',
    );
  });
});

describe('goQuote (fmt %q)', () => {
  // [input, %q(input), %q(shellEscape(input))] — all from Go.
  const vectors: [string, string, string][] = [
    ['C.UTF-8', '"C.UTF-8"', '"C.UTF-8"'],
    ['a\\b', '"a\\\\b"', '"a\\\\\\\\b"'],
    ['say "hi" $HOME `x`', '"say \\"hi\\" $HOME `x`"', '"say \\\\\\"hi\\\\\\" \\\\$HOME \\\\`x\\\\`"'],
    ['tab\there\nnl\r\x07\b\f\v\x00\x1f\x7f', '"tab\\there\\nnl\\r\\a\\b\\f\\v\\x00\\x1f\\x7f"', '"tab\\there\\nnl\\r\\a\\b\\f\\v\\x00\\x1f\\x7f"'],
    [
      '\u00a0nbsp\u00adshy\u200bzw\u2028ls\ufeffbom',
      '"\\u00a0nbsp\\u00adshy\\u200bzw\\u2028ls\\ufeffbom"',
      '"\\u00a0nbsp\\u00adshy\\u200bzw\\u2028ls\\ufeffbom"',
    ],
    ['é😀中文\u{1F9FF}', '"é😀中文\u{1F9FF}"', '"é😀中文\u{1F9FF}"'],
    ['\u{E0001}tag\u{10FFFF}', '"\\U000e0001tag\\U0010ffff"', '"\\U000e0001tag\\U0010ffff"'],
    ['\u0378unassigned', '"\\u0378unassigned"', '"\\u0378unassigned"'],
    ["'single'", '"\'single\'"', '"\'single\'"'],
  ];
  for (const [input, quoted, escapedQuoted] of vectors) {
    it(`quotes ${JSON.stringify(input)} (Go)`, () => {
      assert.equal(goQuote(input), quoted);
      assert.equal(goQuote(shellEscape(input)), escapedQuoted);
    });
  }
});

describe('apptainerEntries (MakeBaseEnv + InsertRunScript + InsertEnv)', () => {
  const config = { Env: ['PATH=/usr/bin', 'LANG=C.UTF-8'], Entrypoint: ['/bin/echo', 'hi'], Cmd: ['there'] };

  it('lists every directory, symlink and file of an empty image, parents first', () => {
    const entries = apptainerEntries(config, () => false);
    assert.deepEqual(
      entries.map((e) => [e.type, e.path, e.type === 'symlink' ? e.target : e.mode.toString(8)]),
      [
        ['directory', '.singularity.d', '755'],
        ['directory', '.singularity.d/libs', '755'],
        ['directory', '.singularity.d/actions', '755'],
        ['directory', '.singularity.d/env', '755'],
        ['directory', 'dev', '755'],
        ['directory', 'proc', '755'],
        ['directory', 'root', '755'],
        ['directory', 'var', '755'],
        ['directory', 'var/tmp', '755'],
        ['directory', 'tmp', '755'],
        ['directory', 'etc', '755'],
        ['directory', 'sys', '755'],
        ['directory', 'home', '755'],
        ['symlink', 'singularity', '.singularity.d/runscript'],
        ['symlink', '.run', '.singularity.d/actions/run'],
        ['symlink', '.exec', '.singularity.d/actions/exec'],
        ['symlink', '.test', '.singularity.d/actions/test'],
        ['symlink', '.shell', '.singularity.d/actions/shell'],
        ['symlink', 'environment', '.singularity.d/env/90-environment.sh'],
        ['file', 'etc/hosts', '644'],
        ['file', 'etc/resolv.conf', '644'],
        ['file', '.singularity.d/actions/exec', '755'],
        ['file', '.singularity.d/actions/run', '755'],
        ['file', '.singularity.d/actions/shell', '755'],
        ['file', '.singularity.d/actions/start', '755'],
        ['file', '.singularity.d/actions/test', '755'],
        ['file', '.singularity.d/env/01-base.sh', '755'],
        ['file', '.singularity.d/env/90-environment.sh', '755'],
        ['file', '.singularity.d/env/95-apps.sh', '755'],
        ['file', '.singularity.d/env/99-base.sh', '755'],
        ['file', '.singularity.d/env/99-runtimevars.sh', '755'],
        ['file', '.singularity.d/runscript', '755'],
        ['file', '.singularity.d/startscript', '755'],
        ['file', '.singularity.d/env/10-docker2singularity.sh', '755'],
      ],
    );
    const content = (path: string): string => {
      const entry = entries.find((e) => e.path === path);
      assert.ok(entry && entry.type === 'file');
      return entry.content.toString('utf8');
    };
    assert.equal(content('etc/hosts'), '');
    assert.equal(content('etc/resolv.conf'), '');
    assert.equal(content('.singularity.d/actions/run'), scripts.RUN_FILE_CONTENT);
    assert.equal(content('.singularity.d/env/99-runtimevars.sh'), scripts.BASE99_RUNTIMEVARS_SH_FILE_CONTENT);
    assert.equal(content('.singularity.d/startscript'), '#!/bin/sh\n');
    assert.equal(content('.singularity.d/runscript'), formatRunscript(config.Entrypoint, config.Cmd));
    assert.equal(content('.singularity.d/env/10-docker2singularity.sh'), '#!/bin/sh\nexport PATH="/usr/bin"\nexport LANG="${LANG:-"C.UTF-8"}"\n');
  });

  it('skips what already resolves in the image but always rewrites the files', () => {
    const present = new Set(['var', 'etc', 'tmp', 'singularity', 'environment', '.singularity.d', '.singularity.d/env']);
    const asked: string[] = [];
    const entries = apptainerEntries({}, (path) => {
      asked.push(path);
      return present.has(path);
    });
    assert.deepEqual(
      entries.filter((e) => e.type !== 'file').map((e) => e.path),
      ['.singularity.d/libs', '.singularity.d/actions', 'dev', 'proc', 'root', 'var/tmp', 'sys', 'home', '.run', '.exec', '.test', '.shell'],
    );
    assert.equal(entries.filter((e) => e.type === 'file').length, 15);
    assert.equal(new Set(asked).size, asked.length, 'each path is asked once');
    assert.ok(!asked.includes('etc/hosts'), 'files are not looked up');
  });

  it('does not ask below a directory it creates', () => {
    const asked: string[] = [];
    apptainerEntries({}, (path) => {
      asked.push(path);
      return false;
    });
    assert.deepEqual(asked, [
      '.singularity.d',
      'dev',
      'proc',
      'root',
      'var',
      'tmp',
      'etc',
      'sys',
      'home',
      'singularity',
      '.run',
      '.exec',
      '.test',
      '.shell',
      'environment',
    ]);
  });

  it('makes the flat root owner-writable like MakeBaseEnv', () => {
    assert.equal(flatRootModeAfterApptainer(0o555), 0o755);
    assert.equal(flatRootModeAfterApptainer(0o40500), 0o700);
    assert.equal(flatRootModeAfterApptainer(0o1755), 0o1755);
  });

  it('writes a tree with the right modes and links', async () => {
    await withTempDir(async (root) => {
      await writeEntries(
        root,
        apptainerEntries(config, () => false),
      );
      assert.equal((await stat(join(root, 'var/tmp'))).mode & 0o777, 0o755);
      assert.equal((await stat(join(root, 'etc/hosts'))).mode & 0o777, 0o644);
      assert.equal((await stat(join(root, '.singularity.d/runscript'))).mode & 0o777, 0o755);
      assert.ok((await lstat(join(root, '.run'))).isSymbolicLink());
      assert.equal(await readlink(join(root, 'environment')), '.singularity.d/env/90-environment.sh');
      assert.equal(await readFile(join(root, 'singularity'), 'utf8'), formatRunscript(config.Entrypoint, config.Cmd));
    });
  });
});

describe('APPTAINER_FILES (what an up-to-date flat tree must hold)', () => {
  it('are the .singularity.d files written into every image, whatever the image holds', () => {
    for (const exists of [() => false, () => true]) {
      const written = apptainerEntries({ Env: ['A=b'], Cmd: ['sh'] }, exists)
        .filter((entry) => entry.type === 'file' && entry.path.startsWith('.singularity.d/'))
        .map((entry) => entry.path);
      assert.deepEqual([...APPTAINER_FILES].sort(), written.sort());
    }
  });
});

describe('hasApptainerFiles (the up-to-date check of a published flat tree)', () => {
  /** lstat over a listing: path -> 'dir' | 'file' | 'symlink'. */
  const lstatOf = (listing: Record<string, string>) => async (path: string) =>
    listing[path] === undefined ? undefined : { isSymbolicLink: () => listing[path] === 'symlink' };
  const complete = (): Record<string, string> => ({
    '.singularity.d': 'dir',
    '.singularity.d/actions': 'dir',
    '.singularity.d/env': 'dir',
    ...Object.fromEntries(APPTAINER_FILES.map((file) => [file, 'file'])),
  });

  it('is true with every file, false when one or a parent is missing', async () => {
    assert.equal(await hasApptainerFiles(lstatOf(complete())), true);
    for (const lost of ['.singularity.d/env/90-environment.sh', '.singularity.d/runscript', '.singularity.d/actions']) {
      const listing = complete();
      delete listing[lost];
      assert.equal(await hasApptainerFiles(lstatOf(listing)), false, lost);
    }
  });

  it('does not follow a parent the image made a symlink (it could lead anywhere on this machine): the files below count as there', async () => {
    assert.equal(await hasApptainerFiles(lstatOf({ '.singularity.d': 'symlink' })), true);
    const listing = complete();
    listing['.singularity.d/env'] = 'symlink';
    for (const file of APPTAINER_FILES) if (file.startsWith('.singularity.d/env/')) delete listing[file];
    assert.equal(await hasApptainerFiles(lstatOf(listing)), true);
    delete listing['.singularity.d/actions/run'];
    assert.equal(await hasApptainerFiles(lstatOf(listing)), false);
  });
});

describe('sylabs scripts', () => {
  const all: [string, string][] = [
    ['exec', scripts.EXEC_FILE_CONTENT],
    ['run', scripts.RUN_FILE_CONTENT],
    ['shell', scripts.SHELL_FILE_CONTENT],
    ['start', scripts.START_FILE_CONTENT],
    ['test', scripts.TEST_FILE_CONTENT],
    ['01-base.sh', scripts.BASE_SH_FILE_CONTENT],
    ['90-environment.sh', scripts.ENVIRONMENT_SH_FILE_CONTENT],
    ['95-apps.sh', scripts.APPS_SH_FILE_CONTENT],
    ['99-base.sh', scripts.BASE99_SH_FILE_CONTENT],
    ['99-runtimevars.sh', scripts.BASE99_RUNTIMEVARS_SH_FILE_CONTENT],
    ['runscript (static)', scripts.RUNSCRIPT_FILE_CONTENT],
    ['startscript', scripts.STARTSCRIPT_FILE_CONTENT],
    ['runscript tail', scripts.RUNSCRIPT_TAIL],
  ];
  it("are DUCC's copies: no empty lines, shebang first, final newline", () => {
    for (const [name, text] of all) {
      assert.ok(!text.includes('\n\n'), `${name} has an empty line`);
      assert.ok(text.endsWith('\n'), name);
      if (name !== 'runscript tail') assert.ok(text.startsWith('#!/bin/sh\n'), name);
    }
  });
  it('keep the exact bytes that editors tend to lose', () => {
    assert.ok(scripts.BASE_SH_FILE_CONTENT.endsWith('# \n# \n'));
    assert.equal(scripts.BASE_SH_FILE_CONTENT.length, 1057);
    assert.equal(scripts.BASE99_SH_FILE_CONTENT.length, 1250);
    assert.equal(scripts.APPS_SH_FILE_CONTENT.length, 1985);
    assert.equal(scripts.RUN_FILE_CONTENT.length, 599);
    assert.equal(scripts.SHELL_FILE_CONTENT.length, 609);
    assert.equal(scripts.TEST_FILE_CONTENT.length, 570);
    assert.equal(scripts.START_FILE_CONTENT.length, 280);
    assert.equal(scripts.EXEC_FILE_CONTENT.length, 125);
    assert.equal(scripts.BASE99_RUNTIMEVARS_SH_FILE_CONTENT.length, 692);
    assert.ok(
      scripts.BASE99_RUNTIMEVARS_SH_FILE_CONTENT.includes(
        'unset SING_USER_DEFINED_PREPEND_PATH \\\n\t  SING_USER_DEFINED_APPEND_PATH \\\n\t  SING_USER_DEFINED_PATH\n',
      ),
    );
    assert.ok(scripts.SHELL_FILE_CONTENT.includes(`defined by '\\$SINGULARITY_SHELL'" 1>&2\n`));
    assert.ok(scripts.SHELL_FILE_CONTENT.includes('PS1="Singularity $SINGULARITY_NAME:\\\\w> "\n'));
    assert.equal(scripts.RUNSCRIPT_FILE_CONTENT, '#!/bin/sh\necho "There is no runscript defined for this container\\n";\n');
  });
  it('parse under sh -n', async () => {
    await withTempDir(async (dir) => {
      for (const [index, [name, text]] of all.entries()) {
        const path = join(dir, `script-${index}`);
        await writeFile(path, text);
        await assert.doesNotReject(execFileAsync('/bin/sh', ['-n', path]), name);
      }
    });
  });
});
