/**
 * The member table of a tar file (a `docker save` or OCI archive), read from its headers alone: each
 * header is one positioned 512-byte read and the members' contents are skipped, so learning where a
 * manifest or a layer is costs no read of any layer. Members are then read or streamed by offset.
 * ustar, GNU long names and PAX `path`/`size`/`linkpath` records are understood; compressed archives are
 * refused with a message saying so.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { DuccError, errorMessage } from '../util/errors.ts';

/** Most members read from one archive (a `docker save` of n layers has about 4n + 3). */
export const MAX_ARCHIVE_MEMBERS = 100_000;
/** Largest PAX or GNU long-name record read. */
const MAX_EXTENDED_HEADER_BYTES = 1024 * 1024;

export interface TarMember {
  name: string;
  /** '0' regular file, '2' symlink, '1' hard link, '5' directory, ... */
  type: string;
  /** Offset of the member's data in the file. */
  offset: number;
  size: number;
  linkname: string;
}

export class TarIndex {
  readonly path: string;
  readonly #members = new Map<string, TarMember>();

  private constructor(path: string) {
    this.path = path;
  }

  /** Reads the headers of the tar at `path`. */
  static async open(path: string, what: string): Promise<TarIndex> {
    const index = new TarIndex(path);
    let handle: FileHandle;
    try {
      handle = await open(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${what} does not exist`, { cause: error });
      throw new DuccError('BOT_ERR_ARCHIVE', `cannot read ${what}: ${code ?? errorMessage(error)}`, { cause: error });
    }
    try {
      await index.#scan(handle, what);
    } finally {
      await handle.close();
    }
    return index;
  }

  /** A member by name (`./` prefixes and trailing slashes ignored), following symbolic and hard links inside the archive. */
  member(name: string): TarMember | undefined {
    let current = this.#members.get(normalize(name));
    for (let hops = 0; current !== undefined && (current.type === '2' || current.type === '1') && hops < 8; hops++) {
      const target = current.type === '1' ? current.linkname : resolveRelative(current.name, current.linkname);
      current = target === undefined ? undefined : this.#members.get(normalize(target));
    }
    return current?.type === '0' ? current : undefined;
  }

  /** Names of the members. */
  names(): string[] {
    return [...this.#members.keys()];
  }

  /** A member's bytes, refused when longer than `maxBytes`. */
  async read(member: TarMember, maxBytes: number, what: string): Promise<Buffer> {
    if (member.size > maxBytes) throw new DuccError('BOT_ERR_LIMIT', `${what} is ${member.size} bytes, more than the ${maxBytes} allowed`);
    const handle = await open(this.path);
    try {
      const buffer = Buffer.alloc(member.size);
      const { bytesRead } = await handle.read(buffer, 0, member.size, member.offset);
      if (bytesRead !== member.size) throw new DuccError('BOT_ERR_ARCHIVE', `${what}: the archive ends inside it`);
      return buffer;
    } finally {
      await handle.close();
    }
  }

  /** A member's bytes as a stream. */
  stream(member: TarMember): Readable {
    if (member.size === 0) return createReadStream(this.path, { start: 1, end: 0 });
    return createReadStream(this.path, { start: member.offset, end: member.offset + member.size - 1, highWaterMark: 1024 * 1024 });
  }

  async #scan(handle: FileHandle, what: string): Promise<void> {
    const { size: fileSize } = await handle.stat();
    const header = Buffer.alloc(512);
    let offset = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: Record<string, string> = {};
    let count = 0;
    for (;;) {
      const { bytesRead } = await handle.read(header, 0, 512, offset);
      if (bytesRead === 0) break; // no end-of-archive blocks: tolerated, as GNU tar does
      if (offset === 0 && header[0] === 0x1f && header[1] === 0x8b) {
        throw new DuccError('BOT_ERR_ARCHIVE', `${what} is gzip-compressed: decompress it first (gunzip), a tar is expected`);
      }
      if (bytesRead < 512) throw new DuccError('BOT_ERR_ARCHIVE', `${what}: truncated tar header at byte ${offset}`);
      if (header.every((byte) => byte === 0)) break;
      if (!checksumOk(header)) throw new DuccError('BOT_ERR_ARCHIVE', `${what}: not a tar file (bad header checksum at byte ${offset})`);
      if (++count > MAX_ARCHIVE_MEMBERS) throw new DuccError('BOT_ERR_LIMIT', `${what} has more than ${MAX_ARCHIVE_MEMBERS} members`);
      const type = String.fromCharCode(header[156] || 0x30);
      const size = pax['size'] !== undefined ? Number(pax['size']) : numeric(header.subarray(124, 136));
      if (!Number.isSafeInteger(size) || size < 0) throw new DuccError('BOT_ERR_ARCHIVE', `${what}: invalid member size at byte ${offset}`);
      const dataOffset = offset + 512;
      if (dataOffset + size > fileSize) throw new DuccError('BOT_ERR_ARCHIVE', `${what}: the archive ends inside a member (byte ${offset})`);
      const next = dataOffset + Math.ceil(size / 512) * 512;
      if (type === 'x' || type === 'L' || type === 'K') {
        if (size > MAX_EXTENDED_HEADER_BYTES) throw new DuccError('BOT_ERR_LIMIT', `${what}: extended header of ${size} bytes at byte ${offset}`);
        const data = Buffer.alloc(size);
        await handle.read(data, 0, size, dataOffset);
        if (type === 'x') pax = parsePax(data);
        else if (type === 'L') longName = cString(data);
        else longLink = cString(data);
        offset = next;
        continue;
      }
      if (type !== 'g') {
        const prefix = header[257] === 0x75 /* 'u' of ustar */ ? cString(header.subarray(345, 500)) : '';
        const shortName = cString(header.subarray(0, 100));
        const name = pax['path'] ?? longName ?? (prefix ? `${prefix}/${shortName}` : shortName);
        const linkname = pax['linkpath'] ?? longLink ?? cString(header.subarray(157, 257));
        this.#members.set(normalize(name), { name: normalize(name), type: type === '\0' ? '0' : type, offset: dataOffset, size, linkname });
      }
      longName = undefined;
      longLink = undefined;
      pax = {};
      offset = next;
    }
  }
}

function normalize(name: string): string {
  return name.replace(/^(?:\.\/)+/, '').replace(/\/+$/, '');
}

/** A symlink target relative to the link's directory, inside the archive; undefined when it climbs out. */
function resolveRelative(linkName: string, target: string): string | undefined {
  const parts = target.startsWith('/') ? [] : linkName.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(part);
  }
  return parts.join('/');
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString('utf8');
}

/** Octal, or base-256 (GNU) when the high bit of the first byte is set. */
function numeric(field: Buffer): number {
  if (field[0]! & 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = cString(field).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumOk(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === numeric(header.subarray(148, 156));
}

function parsePax(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let position = 0;
  while (position < data.length) {
    const space = data.indexOf(0x20, position);
    if (space === -1) break;
    const length = Number(data.subarray(position, space).toString('ascii'));
    if (!Number.isSafeInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, position + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    position += length;
  }
  return records;
}
