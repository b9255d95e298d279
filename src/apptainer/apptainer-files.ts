/**
 * The Singularity/Apptainer files DUCC adds to every flat image (ducc.md §6), as a list of entries to
 * write on top of the flat root filesystem. Mirrors `ducc/singularity/dotfiles.go` `MakeBaseEnv`
 * followed by `startup_files.go` `InsertRunScript` and `InsertEnv`:
 *
 * 1. `makeDirs`: `os.MkdirAll(…, 0755)` of `.singularity.d/{libs,actions,env}`, `dev`, `proc`, `root`,
 *    `var/tmp`, `tmp`, `etc`, `sys`, `home`. `MkdirAll` uses `os.Stat` (follows symlinks): an existing
 *    directory, or a symlink resolving to one, is left alone; missing parents (`.singularity.d`, `var`)
 *    are created too. (Go fails — and DUCC with it — when the name exists as a non-directory or a
 *    dangling symlink; a boolean `exists` cannot tell those apart, so we list the directory.)
 * 2. `makeSymlinks`: `singularity`, `.run`, `.exec`, `.test`, `.shell`, `environment`, each created only
 *    when `os.Stat(name)` fails, i.e. when the name does not RESOLVE (Stat, not Lstat). A dangling
 *    symlink of that name therefore does not count as existing; Go's `os.Symlink` then fails with
 *    EEXIST and DUCC aborts the image. We list the symlink; the writer decides (replace or fail).
 *    The check runs after step 1 and before step 3, so a symlink pointing at one of the action files
 *    resolves only if the image already had that file.
 * 3. `makeFiles`: always created or truncated (`O_WRONLY|O_CREATE|O_TRUNC`; an existing regular file is
 *    first `chmod`ed to the mode): `etc/hosts`, `etc/resolv.conf` (empty, 0644), the action scripts,
 *    the env scripts, `.singularity.d/runscript` and `.singularity.d/startscript` (0755). Go opens them
 *    following symlinks (so an image whose `etc/resolv.conf` is a symlink gets its target written — on
 *    the host if the link is absolute); a safe writer should replace such a symlink instead.
 * 4. `InsertRunScript` rewrites `.singularity.d/runscript` (`os.Create` + chmod 0755) with the generated
 *    script, and `InsertEnv` writes `.singularity.d/env/10-docker2singularity.sh` (0755).
 *
 * The static `runscript` of step 3 never survives step 4, so the list carries the generated one.
 * `exists(path)` must answer with `stat` semantics (follows symlinks) for the image as unpacked,
 * before any of these entries is applied. Paths are relative to the flat root, without a leading slash;
 * parents come before children.
 */
import {
  APPS_SH_FILE_CONTENT,
  BASE99_RUNTIMEVARS_SH_FILE_CONTENT,
  BASE99_SH_FILE_CONTENT,
  BASE_SH_FILE_CONTENT,
  ENVIRONMENT_SH_FILE_CONTENT,
  EXEC_FILE_CONTENT,
  RUNSCRIPT_TAIL,
  RUN_FILE_CONTENT,
  SHELL_FILE_CONTENT,
  STARTSCRIPT_FILE_CONTENT,
  START_FILE_CONTENT,
  TEST_FILE_CONTENT,
} from './sylabs-scripts.ts';

export type GeneratedEntry =
  | { type: 'directory'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; content: Buffer }
  | { type: 'symlink'; path: string; target: string };

/**
 * The parts of the image config (`config` object of the image configuration blob) DUCC reads. `Cmd` and
 * `Entrypoint` are Docker `strslice.StrSlice`s, which also accept a single JSON string.
 */
export interface ApptainerImageConfig {
  Env?: readonly string[] | null | undefined;
  Cmd?: readonly string[] | string | null | undefined;
  Entrypoint?: readonly string[] | string | null | undefined;
}

/** Directories of `makeDirs`, in order (each created with its missing parents). */
export const APPTAINER_DIRECTORIES = [
  '.singularity.d/libs',
  '.singularity.d/actions',
  '.singularity.d/env',
  'dev',
  'proc',
  'root',
  'var/tmp',
  'tmp',
  'etc',
  'sys',
  'home',
] as const;

/** Symlinks of `makeSymlinks`, in order: [name, target]. */
export const APPTAINER_SYMLINKS = [
  ['singularity', '.singularity.d/runscript'],
  ['.run', '.singularity.d/actions/run'],
  ['.exec', '.singularity.d/actions/exec'],
  ['.test', '.singularity.d/actions/test'],
  ['.shell', '.singularity.d/actions/shell'],
  ['environment', '.singularity.d/env/90-environment.sh'],
] as const;

const DIR_MODE = 0o755;
const SCRIPT_MODE = 0o755;
const ETC_FILE_MODE = 0o644;

/** Entries to add on top of a flat root filesystem, in parent-before-child order (see the file comment). */
export function apptainerEntries(config: ApptainerImageConfig, exists: (path: string) => boolean): GeneratedEntry[] {
  const entries: GeneratedEntry[] = [];

  const created = new Set<string>();
  const checked = new Set<string>();
  for (const dir of APPTAINER_DIRECTORIES) {
    const parts = dir.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const path = parts.slice(0, i).join('/');
      if (checked.has(path)) continue;
      checked.add(path);
      const parent = parts.slice(0, i - 1).join('/');
      // Below a directory we create, nothing exists yet.
      if ((parent !== '' && created.has(parent)) || !exists(path)) {
        created.add(path);
        entries.push({ type: 'directory', path, mode: DIR_MODE });
      }
    }
  }

  for (const [path, target] of APPTAINER_SYMLINKS) {
    if (!exists(path)) entries.push({ type: 'symlink', path, target });
  }

  const file = (path: string, mode: number, content: string): void => {
    entries.push({ type: 'file', path, mode, content: Buffer.from(content, 'utf8') });
  };
  file('etc/hosts', ETC_FILE_MODE, '');
  file('etc/resolv.conf', ETC_FILE_MODE, '');
  for (const [path, content] of STATIC_SCRIPTS) file(path, SCRIPT_MODE, content);
  file(RUNSCRIPT, SCRIPT_MODE, formatRunscript(config.Entrypoint, config.Cmd));
  file(STARTSCRIPT, SCRIPT_MODE, STARTSCRIPT_FILE_CONTENT);
  file(DOCKER_ENV, SCRIPT_MODE, formatDockerEnv(config.Env));
  return entries;
}

/** The scripts of `makeFiles` whose content is fixed, in order. */
const STATIC_SCRIPTS: readonly (readonly [string, string])[] = [
  ['.singularity.d/actions/exec', EXEC_FILE_CONTENT],
  ['.singularity.d/actions/run', RUN_FILE_CONTENT],
  ['.singularity.d/actions/shell', SHELL_FILE_CONTENT],
  ['.singularity.d/actions/start', START_FILE_CONTENT],
  ['.singularity.d/actions/test', TEST_FILE_CONTENT],
  ['.singularity.d/env/01-base.sh', BASE_SH_FILE_CONTENT],
  ['.singularity.d/env/90-environment.sh', ENVIRONMENT_SH_FILE_CONTENT],
  ['.singularity.d/env/95-apps.sh', APPS_SH_FILE_CONTENT],
  ['.singularity.d/env/99-base.sh', BASE99_SH_FILE_CONTENT],
  ['.singularity.d/env/99-runtimevars.sh', BASE99_RUNTIMEVARS_SH_FILE_CONTENT],
];
const RUNSCRIPT = '.singularity.d/runscript';
const STARTSCRIPT = '.singularity.d/startscript';
const DOCKER_ENV = '.singularity.d/env/10-docker2singularity.sh';

/**
 * The `.singularity.d` files every flat image gets, whatever the image holds (paths relative to the flat
 * root). A flat tree without one of them is not up to date and is published again, as DUCC does since
 * cvmfs/cvmfs PR 4208 (images had lost their dotfiles after a cleanup).
 */
export const APPTAINER_FILES: readonly string[] = [...STATIC_SCRIPTS.map(([path]) => path), RUNSCRIPT, STARTSCRIPT, DOCKER_ENV];

/**
 * Whether a published flat tree holds every file of APPTAINER_FILES, given lstat of a path relative to
 * its root. Each parent is looked at with lstat too: one that the image made a symlink is not followed
 * (on the publishing machine it could lead anywhere, and the tree was written through it inside the
 * image), and the files below it count as there; otherwise such an image would never be up to date.
 */
export async function hasApptainerFiles(lstat: (path: string) => Promise<{ isSymbolicLink(): boolean } | undefined>): Promise<boolean> {
  const parents = new Map<string, 'directory' | 'symlink' | 'missing'>();
  const parentState = async (path: string): Promise<'directory' | 'symlink' | 'missing'> => {
    let state = parents.get(path);
    if (state === undefined) {
      const slash = path.lastIndexOf('/');
      const above = slash < 0 ? 'directory' : await parentState(path.slice(0, slash));
      if (above !== 'directory') state = above;
      else {
        const stat = await lstat(path);
        state = stat === undefined ? 'missing' : stat.isSymbolicLink() ? 'symlink' : 'directory';
      }
      parents.set(path, state);
    }
    return state;
  };
  for (const file of APPTAINER_FILES) {
    const parent = await parentState(file.slice(0, file.lastIndexOf('/')));
    if (parent === 'missing') return false;
    if (parent === 'directory' && (await lstat(file)) === undefined) return false;
  }
  return true;
}

/**
 * The permission bits (`mode & 0o7777`) of the flat root after `MakeBaseEnv`, which first makes the
 * root owner-writable: `if mode&0200 == 0 { chmod(root, mode|0200) }`. Not an entry of its own.
 */
export function flatRootModeAfterApptainer(mode: number): number {
  const perm = mode & 0o7777;
  return (perm & 0o200) === 0 ? perm | 0o200 : perm;
}

/**
 * The generated `.singularity.d/runscript` (Go `InsertRunScript`): `#!/bin/sh`, `OCI_ENTRYPOINT='…'`,
 * `OCI_CMD='…'` (each `''` when empty, otherwise `argsQuoted`), then the fixed Sylabs block.
 * A single quote inside an argument is not escaped (inherited bug: it breaks the assignment).
 */
export function formatRunscript(entrypoint: readonly string[] | string | null | undefined, cmd: readonly string[] | string | null | undefined): string {
  const ep = strSlice(entrypoint);
  const args = strSlice(cmd);
  return (
    '#!/bin/sh\n' +
    (ep.length > 0 ? `OCI_ENTRYPOINT='${argsQuoted(ep)}'\n` : "OCI_ENTRYPOINT=''\n") +
    (args.length > 0 ? `OCI_CMD='${argsQuoted(args)}'\n` : "OCI_CMD=''\n") +
    RUNSCRIPT_TAIL
  );
}

/**
 * The generated `.singularity.d/env/10-docker2singularity.sh` (Go `InsertEnv`): `#!/bin/sh`, then per
 * `Env` entry, split at the first `=`:
 * - `NAME` (no `=`): `export NAME="${NAME:-}"`
 * - `PATH=V`: `export PATH=` + Go `%q` of `shellEscape(V)`
 * - `NAME=V`: `export NAME="${NAME:-` + Go `%q` of `shellEscape(V)` + `}"`
 * (`%q` after the shell escape doubles every backslash the escape added — inherited as is.)
 */
export function formatDockerEnv(env: readonly string[] | null | undefined): string {
  let out = '#!/bin/sh\n';
  for (const element of env ?? []) {
    const eq = element.indexOf('=');
    if (eq < 0) {
      out += `export ${element}="\${${element}:-}"\n`;
      continue;
    }
    const name = element.slice(0, eq);
    const value = goQuote(shellEscape(element.slice(eq + 1)));
    out += name === 'PATH' ? `export ${name}=${value}\n` : `export ${name}="\${${name}:-${value}}"\n`;
  }
  return out;
}

/** Singularity `shell.ArgsQuoted`: each argument as `"` + `shellEscape(arg)` + `"`, separated by one space. */
export function argsQuoted(args: readonly string[]): string {
  return args.map((arg) => `"${shellEscape(arg)}"`).join(' ');
}

/** Singularity `shell.Escape`: a backslash before every `\`, `"`, `` ` `` and `$` (backslashes first). */
export function shellEscape(s: string): string {
  return s.replace(/[\\"`$]/g, (c) => `\\${c}`);
}

const GO_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/**
 * Go `fmt.Sprintf("%q", s)` (= `strconv.Quote`): `\"` and `\\`; printable characters (Unicode
 * categories L, M, N, P, S and the ASCII space) as they are; `\a \b \f \n \r \t \v`; other characters
 * below U+0020 and DEL as `\xhh`; other non-printable ones as `\uhhhh` / `\Uhhhhhhhh` (lowercase hex).
 * A lone surrogate (only possible from a decoded `\udxxx` escape, which Go decodes to U+FFFD) is U+FFFD.
 */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const r = ch.codePointAt(0) as number;
    if (r >= 0xd800 && r <= 0xdfff) {
      out += '\ufffd';
    } else if (ch === '"' || ch === '\\') {
      out += `\\${ch}`;
    } else if (r < 0x80 ? r >= 0x20 && r < 0x7f : GO_PRINTABLE.test(ch)) {
      out += ch;
    } else {
      switch (r) {
        case 0x07:
          out += '\\a';
          break;
        case 0x08:
          out += '\\b';
          break;
        case 0x0c:
          out += '\\f';
          break;
        case 0x0a:
          out += '\\n';
          break;
        case 0x0d:
          out += '\\r';
          break;
        case 0x09:
          out += '\\t';
          break;
        case 0x0b:
          out += '\\v';
          break;
        default:
          if (r < 0x20 || r === 0x7f) out += `\\x${r.toString(16).padStart(2, '0')}`;
          else if (r < 0x10000) out += `\\u${r.toString(16).padStart(4, '0')}`;
          else out += `\\U${r.toString(16).padStart(8, '0')}`;
      }
    }
  }
  return `${out}"`;
}

/** Docker `strslice.StrSlice`: a JSON string is a one-element list. */
function strSlice(value: readonly string[] | string | null | undefined): readonly string[] {
  if (value === null || value === undefined) return [];
  return typeof value === 'string' ? [value] : value;
}
