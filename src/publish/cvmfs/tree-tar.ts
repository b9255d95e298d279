import type { TreeEntry } from '../../unpack/tree-types.ts';
import { DuccError } from '../../util/errors.ts';
import { CATALOG_MARKER, type EntryMeta, type IngestTar } from './ingest-tar.ts';
import { normalizeRelativePath } from './paths.ts';

/**
 * Writes a flat tree into an ingest tar below `prefix` ('' when the ingest's base is the tree itself),
 * with an empty catalog marker at its root. `link` entries (a file of a published layer) become what
 * `linkTarget` names: a tar hard link to the published file, which the ingest turns into a catalog clone;
 * a publisher that cannot clone (the gateway's ingests see only their lease) gets `file` entries instead.
 */
export async function writeTree(
  tar: IngestTar,
  prefix: string,
  entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry>,
  owner: { uid: number; gid: number },
  linkTarget?: (source: string, entryPath: string) => string,
): Promise<void> {
  let rootWritten = false;
  const name = (entryPath: string) => (prefix === '' ? entryPath : entryPath === '' ? prefix : `${prefix}/${entryPath}`);
  const writeRoot = async (meta: EntryMeta) => {
    rootWritten = true;
    await tar.directory(prefix, meta);
    await tar.file(name(CATALOG_MARKER), { ...owner, mode: 0o644, mtime: meta.mtime }, Buffer.alloc(0));
  };
  /** One entry; a promise only when the tar had to wait (nearly never: see IngestTar), else undefined. */
  const write = (entry: TreeEntry): Promise<void> | undefined => {
    if (entry.path === '' && entry.type !== 'directory') throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `tree ${entry.type} entry with an empty path`);
    if (entry.path === CATALOG_MARKER) return undefined; // the tree gets its own marker
    if (!rootWritten) {
      const root = writeRoot(entry.path === '' && entry.type === 'directory' ? entry : { ...owner, mode: 0o755, mtime: new Date() });
      return entry.path === '' ? root : root.then(() => write(entry));
    }
    if (entry.path === '') return undefined;
    const entryName = name(normalizeRelativePath(entry.path, 'BOT_ERR_UNSAFE_ENTRY'));
    let written: Promise<void>;
    switch (entry.type) {
      case 'directory':
        written = tar.directory(entryName, entry);
        break;
      case 'symlink':
        written = tar.symlink(entryName, entry.target, entry);
        break;
      case 'file':
        if (entry.content !== undefined) written = tar.file(entryName, entry, entry.content);
        else if (entry.source !== undefined) written = tar.fileFrom(entryName, entry, entry.source, entry.size);
        else throw new DuccError('BOT_ERR_PUBLISH', `tree file entry ${entry.path} has neither content nor source`);
        break;
      case 'hardlink':
        written = tar.hardlink(entryName, name(normalizeRelativePath(entry.target, 'BOT_ERR_UNSAFE_ENTRY')));
        break;
      case 'link':
        if (linkTarget === undefined) throw new DuccError('BOT_ERR_PUBLISH', `tree entry ${entry.path}: a 'link' entry, but this publisher needs file entries`);
        // A catalog clone of the published layer file: same content, mode, owner and mtime.
        written = tar.hardlink(entryName, linkTarget(entry.source, entry.path));
        break;
    }
    return tar.waited(written) ? written : undefined;
  };
  // A plain loop over a plain iterable (a FlatTree's entries), awaiting only what had to wait: for-await,
  // or an await per entry, would make promises for each of tens of thousands of entries.
  if (Symbol.iterator in entries) {
    for (const entry of entries) {
      const waiting = write(entry);
      if (waiting !== undefined) await waiting;
    }
  } else for await (const entry of entries) await write(entry);
  if (!rootWritten) await writeRoot({ ...owner, mode: 0o755, mtime: new Date() });
}
