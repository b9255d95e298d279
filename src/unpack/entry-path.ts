import { DuccError } from '../util/errors.ts';
import type { ExtractLimits } from './settings.ts';

// The limits and the variables that set them are read in settings.ts; re-exported for the callers
// outside this folder that name them (the layer byte limit is also counted by convert/layer-stream.ts).
export { DEFAULT_EXTRACT_LIMITS, EXTRACT_LIMIT_VARIABLES, extractLimits, type ExtractLimits } from './settings.ts';

/**
 * Turns a tar entry name into path components relative to the layer root: a leading `/` and `./` are
 * dropped (as every container runtime does), `.` components vanish, and any `..` component is rejected
 * rather than "cleaned", so a name can never climb out of the target. Returns [] for the root itself.
 */
export function entryComponents(name: string, limits: ExtractLimits, where: string): string[] {
  if (name.includes('\0')) throw unsafe(where, 'name contains a NUL byte');
  if (Buffer.byteLength(name) > limits.maxPathBytes) throw new DuccError('BOT_ERR_LIMIT', `${where}: name longer than ${limits.maxPathBytes} bytes`);
  const components = name.split('/').filter((part) => part !== '' && part !== '.');
  if (components.includes('..')) throw unsafe(where, "name contains a '..' component");
  if (components.length > limits.maxDepth) throw new DuccError('BOT_ERR_LIMIT', `${where}: deeper than ${limits.maxDepth} directories`);
  return components;
}

/** A name that needs normalising: an empty (leading '/', '//'), '.' or '..' component, or nothing at all. */
const NOT_PLAIN = /(?:^|\/)\.{0,2}(?:\/|$)/;

/**
 * `name` without its trailing '/', when it is plain — components that are neither empty, '.' nor '..',
 * no NUL — and so short that it is within the byte and depth limits whatever its characters: then its
 * components are exactly what entryComponents would give, joined by '/'. Otherwise undefined (call
 * entryComponents, which normalises or rejects it).
 */
export function plainEntryName(name: string, limits: ExtractLimits): string | undefined {
  const trimmed = name.endsWith('/') ? name.slice(0, -1) : name;
  // At most 3 UTF-8 bytes per UTF-16 unit (with the '/' dropped); at most (length + 1) / 2 components.
  if ((trimmed.length + 1) * 3 > limits.maxPathBytes || trimmed.length >= 2 * limits.maxDepth) return undefined;
  if (trimmed.includes('\0') || NOT_PLAIN.test(trimmed)) return undefined;
  return trimmed;
}

export function unsafe(where: string, why: string): DuccError {
  return new DuccError('BOT_ERR_UNSAFE_ENTRY', `${where}: ${why}`);
}

/** OCI whiteout names. `.wh..wh..opq` marks an opaque directory; `.wh.<name>` deletes `<name>` below. */
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
export const WHITEOUT_PREFIX = '.wh.';

// Shared answers: classifyName runs for every entry of every layer, and most names are plain.
const PLAIN = Object.freeze({ kind: 'plain' as const });
const OPAQUE = Object.freeze({ kind: 'opaque' as const });
const AUFS_META = Object.freeze({ kind: 'aufs-meta' as const });

/** Classifies a file name: a whiteout of `target`, the opaque marker, other `.wh..wh.` metadata (aufs), or a plain name. */
export function classifyName(
  name: string,
): { kind: 'whiteout'; target: string } | { readonly kind: 'opaque' } | { readonly kind: 'aufs-meta' } | { readonly kind: 'plain' } {
  if (!name.startsWith(WHITEOUT_PREFIX)) return PLAIN;
  if (name === OPAQUE_WHITEOUT) return OPAQUE;
  if (name.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return AUFS_META;
  return { kind: 'whiteout', target: name.slice(WHITEOUT_PREFIX.length) };
}

/**
 * Whether a name may not hold entries: a whiteout (`.wh.<name>`) or the opaque marker. `.wh.etc/somefile`
 * would leave a directory `.wh.etc` in the layer's directory, which every reader of a `layerfs` (our
 * flattener, `cvmfs_server overlay`, the CVMFS snapshotter) takes for the whiteout of `etc`. aufs
 * metadata (`.wh..wh.plnk/`) is not a whiteout: it may, and is left out of flat trees.
 */
export function isWhiteoutName(name: string): boolean {
  const kind = classifyName(name).kind;
  return kind === 'whiteout' || kind === 'opaque';
}

/** Rejects a whiteout name used as a directory (see isWhiteoutName) among `directories`, the parent components of an entry. */
export function checkNoWhiteoutDirectory(directories: readonly string[], where: string): void {
  for (const name of directories) if (isWhiteoutName(name)) throw unsafe(where, `the whiteout name '${name}' is used as a directory`);
}

/** Whiteouts that name nothing (`.wh.`), or `.`/`..` (`.wh..`, `.wh...`), are invalid and rejected. */
export function checkWhiteoutName(name: string, where: string): void {
  const kind = classifyName(name);
  if (kind.kind === 'whiteout' && (kind.target === '' || kind.target === '.' || kind.target === '..')) {
    throw unsafe(where, `invalid whiteout '${name}'`);
  }
}
