import tarStream from 'tar-stream';
import { buffer } from 'node:stream/consumers';

/** One entry of a tar archive built by a test; every field beyond name and type has a sane default. */
export interface TarEntrySpec {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

export const DEFAULT_MTIME = new Date('2024-01-02T03:04:05Z');

/** Builds an uncompressed tar archive in memory from entry specs, in the given order. */
export async function buildTar(entries: TarEntrySpec[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const done = buffer(pack);
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const content = entry.content === undefined ? undefined : Buffer.from(entry.content);
    const header: tarStream.Header = {
      name: entry.name,
      type,
      size: type === 'file' ? (content?.length ?? 0) : 0,
      mode: entry.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: entry.uid ?? 0,
      gid: entry.gid ?? 0,
      uname: '',
      gname: '',
      mtime: entry.mtime ?? DEFAULT_MTIME,
      linkname: entry.linkname ?? '',
      devmajor: entry.devmajor ?? 0,
      devminor: entry.devminor ?? 0,
      ...(entry.pax === undefined ? {} : { pax: entry.pax }),
    };
    await new Promise<void>((resolve, reject) => {
      const callback = (error?: Error | null) => (error ? reject(error) : resolve());
      if (type === 'file') pack.entry(header, content ?? Buffer.alloc(0), callback);
      else pack.entry(header, callback);
    });
  }
  pack.finalize();
  return done;
}
