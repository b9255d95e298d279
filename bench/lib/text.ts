/**
 * Deterministic content for generated files: text that compresses like source code (about 3:1 with
 * gzip), and "mildly compressible" binary data.
 */
import { randomFillSync } from 'node:crypto';

/** mulberry32: a small, fast, seeded PRNG (deterministic images => stable digests across cache rebuilds). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'import export const let function return if else for while async await class interface type extends ' +
  'value result error buffer stream layer image config digest manifest index path file directory mode uid gid ' +
  'mtime size count total options context logger registry publisher catalog tree entry header name target link ' +
  'data bytes chunk offset length start end true false null undefined this self new throw try catch finally ' +
  'x y z i j k n m a b c 0 1 2 16 32 64 128 256 1024 4096 = == === != !== + - * / % < > <= >= && || ! ? : ; , . ( ) { } [ ]'
).split(' ');

let corpus: Buffer | undefined;

/** 1 MiB of code-like text generated once (seeded), from which file contents are cut. */
function textCorpus(): Buffer {
  if (corpus !== undefined) return corpus;
  const random = prng(42);
  const parts: string[] = [];
  let length = 0;
  let column = 0;
  while (length < 1024 * 1024) {
    const word = WORDS[Math.floor(random() * WORDS.length)]!;
    const sep = column > 60 + random() * 30 ? '\n' + '  '.repeat(Math.floor(random() * 4)) : ' ';
    column = sep === ' ' ? column + word.length + 1 : 0;
    parts.push(word, sep);
    length += word.length + sep.length;
  }
  corpus = Buffer.from(parts.join(''), 'latin1').subarray(0, 1024 * 1024);
  return corpus;
}

/** `size` bytes of code-like text, unique to `id` (its first line names it). */
export function textFile(id: string, size: number, random: () => number): Buffer {
  const header = Buffer.from(`// ${id}\n`, 'latin1');
  const body = textCorpus();
  const start = Math.floor(random() * (body.length - size));
  return Buffer.concat([header, body.subarray(start, start + Math.max(0, size - header.length))]);
}

/** Random bytes with two bits of every byte cleared: ~6 bits of entropy per byte, so gzip gets ~80%. */
export function mildlyCompressible(size: number): Buffer {
  const buffer = Buffer.allocUnsafeSlow(size); // never pooled: byteOffset 0, as the Uint32Array view needs
  randomFillSync(buffer);
  const words = new Uint32Array(buffer.buffer, buffer.byteOffset, Math.floor(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = words[i]! & 0x3f3f3f3f;
  return buffer;
}
