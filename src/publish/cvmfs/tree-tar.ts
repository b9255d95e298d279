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
  for await (const entry of entries) {
    if (entry.path === '' && entry.type !== 'directory') throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `tree ${entry.type} entry with an empty path`);
    if (entry.path === CATALOG_MARKER) continue; // the tree gets its own marker
    if (!rootWritten) await writeRoot(entry.path === '' && entry.type === 'directory' ? entry : { ...owner, mode: 0o755, mtime: new Date() });
    if (entry.path === '') continue;
    const entryName = name(normalizeRelativePath(entry.path, 'BOT_ERR_UNSAFE_ENTRY'));
    switch (entry.type) {
      case 'directory':
        await tar.directory(entryName, entry);
        break;
      case 'symlink':
        await tar.symlink(entryName, entry.target, entry);
        break;
      case 'file':
        if (entry.content !== undefined) await tar.file(entryName, entry, entry.content);
        else if (entry.source !== undefined) await tar.fileFrom(entryName, entry, entry.source, entry.size);
        else throw new DuccError('BOT_ERR_PUBLISH', `tree file entry ${entry.path} has neither content nor source`);
        break;
      case 'hardlink':
        await tar.hardlink(entryName, name(normalizeRelativePath(entry.target, 'BOT_ERR_UNSAFE_ENTRY')));
        break;
      case 'link':
        if (linkTarget === undefined) throw new DuccError('BOT_ERR_PUBLISH', `tree entry ${entry.path}: a 'link' entry, but this publisher needs file entries`);
        // A catalog clone of the published layer file: same content, mode, owner and mtime.
        await tar.hardlink(entryName, linkTarget(entry.source, entry.path));
        break;
    }
  }
  if (!rootWritten) await writeRoot({ ...owner, mode: 0o755, mtime: new Date() });
}
