/**
 * Hand-made tar records for what tar-stream's packer cannot write: GNU long-name ('L') and long-link
 * ('K') records, corrupt headers. Only what the hardening tests need; every byte is built here in code.
 */

const BLOCK = 512;

export interface RawHeader {
  name: string;
  /** One typeflag character: '0' file, '2' symlink, '5' directory, 'L' GNU long name, 'K' GNU long link, 'x' PAX. */
  typeflag: string;
  size?: number;
  mode?: number;
  linkname?: string;
  /** 'gnu' writes the old GNU magic (`ustar  \0`) as GNU tar does for its long-name records. */
  format?: 'gnu' | 'ustar';
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One 512-byte header block with a correct checksum. */
export function rawHeader(fields: RawHeader): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(fields.name.slice(0, 100), 0, 'utf8');
  block.write(octal(fields.mode ?? 0o644, 8), 100, 'ascii');
  block.write(octal(0, 8), 108, 'ascii');
  block.write(octal(0, 8), 116, 'ascii');
  block.write(octal(fields.size ?? 0, 12), 124, 'ascii');
  block.write(octal(1_704_164_645, 12), 136, 'ascii');
  block.write(fields.typeflag, 156, 'ascii');
  if (fields.linkname !== undefined) block.write(fields.linkname.slice(0, 100), 157, 'utf8');
  if ((fields.format ?? 'ustar') === 'gnu') block.write('ustar  \0', 257, 'ascii');
  else block.write('ustar\u000000', 257, 'ascii');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return block;
}

/** Content padded to whole blocks. */
export function rawData(data: Buffer): Buffer {
  const padded = Buffer.alloc(Math.ceil(data.length / BLOCK) * BLOCK);
  data.copy(padded);
  return padded;
}

/** A GNU long-name record followed by the entry it names (whose own name field is truncated). */
export function gnuLongNameEntry(longName: string, entry: RawHeader, content: Buffer = Buffer.alloc(0)): Buffer {
  const nameBytes = Buffer.from(`${longName}\0`);
  const parts = [rawHeader({ name: '././@LongLink', typeflag: 'L', size: nameBytes.length, format: 'gnu' }), rawData(nameBytes)];
  if (entry.linkname !== undefined && Buffer.byteLength(entry.linkname) > 100) {
    const linkBytes = Buffer.from(`${entry.linkname}\0`);
    parts.push(rawHeader({ name: '././@LongLink', typeflag: 'K', size: linkBytes.length, format: 'gnu' }), rawData(linkBytes));
  }
  parts.push(rawHeader({ ...entry, format: 'gnu', size: content.length }), rawData(content));
  return Buffer.concat(parts);
}

/** A PAX extended header ('x') holding these records, padded to whole blocks. */
export function paxHeader(records: Record<string, string>): Buffer {
  const body = Buffer.concat(
    Object.entries(records).map(([key, value]) => {
      // `<length> <key>=<value>\n`, where the length counts its own digits.
      const rest = ` ${key}=${value}\n`;
      let length = Buffer.byteLength(rest) + 1;
      while (String(length).length + Buffer.byteLength(rest) !== length) length = String(length).length + Buffer.byteLength(rest);
      return Buffer.from(`${length}${rest}`);
    }),
  );
  return Buffer.concat([rawHeader({ name: 'PaxHeaders/x', typeflag: 'x', size: body.length }), rawData(body)]);
}

/** The two zero blocks that end an archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
