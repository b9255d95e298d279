/**
 * JSON as I-JSON (RFC 7493) has it, for documents whose meaning must not depend on the parser reading
 * them: manifests, indexes and configs. JSON.parse lets three things through that other parsers read
 * differently, so that a registry could show us one image and a runtime or a scanner another:
 *
 * - bytes that are not UTF-8 (Buffer#toString turns each bad sequence into U+FFFD, Go keeps some bytes);
 * - the same key twice in one object (JSON.parse and Go keep the last, other parsers the first or fail);
 * - a \u escape that is half of a surrogate pair (JSON.parse keeps it, Go turns it into U+FFFD).
 *
 * All three are refused. The text is first parsed by JSON.parse, so the scanner below only ever sees
 * valid JSON: it needs to know where strings are and which of them are keys, nothing of the grammar.
 * It keeps its own stack, so a deeply nested document cannot overflow the call stack.
 */

/** What made a document unacceptable: one line, safe to put in an error message. */
export class StrictJsonError extends Error {}

/** Fails on any byte sequence that is not UTF-8; keeps a BOM in the text, where JSON.parse refuses it. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Longest key quoted in a message (keys are untrusted). */
const MAX_QUOTED_KEY_CHARS = 100;
/** Innermost steps of a path quoted in a message. */
const MAX_PATH_STEPS = 12;

interface ObjectFrame {
  kind: 'object';
  keys: Set<string>;
  /** The next string is a key (after '{' or ','), not a value (after ':'). */
  expectKey: boolean;
  /** The last key read: where a nested value sits. */
  key: string;
  parent: Frame | undefined;
}

interface ArrayFrame {
  kind: 'array';
  index: number;
  parent: Frame | undefined;
}

type Frame = ObjectFrame | ArrayFrame;

/** Parses `bytes` as strict JSON; throws StrictJsonError saying what is wrong. */
export function parseStrictJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new StrictJsonError('not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new StrictJsonError('not valid JSON');
  }
  checkKeysAndStrings(text);
  return value;
}

/** Walks valid JSON text: duplicate keys and lone surrogate escapes are errors. */
function checkKeysAndStrings(text: string): void {
  let frame: Frame | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      frame = { kind: 'object', keys: new Set(), expectKey: true, key: '', parent: frame };
    } else if (c === 0x5b /* [ */) {
      frame = { kind: 'array', index: 0, parent: frame };
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frame = frame?.parent;
    } else if (c === 0x2c /* , */) {
      if (frame?.kind === 'object') frame.expectKey = true;
      else if (frame?.kind === 'array') frame.index++;
    } else if (c === 0x3a /* : */) {
      if (frame?.kind === 'object') frame.expectKey = false;
    } else if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      const raw = text.slice(i + 1, end);
      // Only escapes can make a string differ from its raw text (and only they can make a lone surrogate:
      // the text itself came from valid UTF-8).
      const decoded = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
      const isKey = frame?.kind === 'object' && frame.expectKey;
      if (LONE_SURROGATE.test(decoded)) {
        const where = isKey ? `a key of the object at ${pathOf(frame)}` : `the string at ${valuePath(frame)}`;
        throw new StrictJsonError(`${where} escapes half of a surrogate pair (\\u${decoded.charCodeAt(decoded.search(LONE_SURROGATE)).toString(16)})`);
      }
      if (frame?.kind === 'object' && isKey) {
        if (frame.keys.has(decoded)) throw new StrictJsonError(`duplicate key ${quoteKey(decoded)} in the object at ${pathOf(frame)}`);
        frame.keys.add(decoded);
        frame.key = decoded;
      }
      i = end;
    }
  }
}

/** Index of the quote closing the string that opens at `start` (valid JSON: there is one). */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; ; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22 /* " */) return i;
  }
}

/**
 * `$`, `$.layers[2].annotations`, `$["a.b"]`: where the container a frame stands for sits in the
 * document. Only the innermost steps of a deep path are shown (`$….a[0]`): it goes into one-line errors.
 */
function pathOf(frame: Frame | undefined): string {
  const steps: string[] = [];
  let inner = frame;
  for (; inner?.parent !== undefined && steps.length < MAX_PATH_STEPS; inner = inner.parent) steps.push(stepInto(inner.parent));
  return `$${inner?.parent === undefined ? '' : '…'}${steps.reverse().join('')}`;
}

/** The path of the value a frame is at now: its key or index added to the frame's own path. */
function valuePath(frame: Frame | undefined): string {
  return frame === undefined ? '$' : `${pathOf(frame)}${stepInto(frame)}`;
}

function stepInto(frame: Frame): string {
  if (frame.kind === 'array') return `[${frame.index}]`;
  return /^[A-Za-z_$][\w$]*$/.test(frame.key) ? `.${frame.key}` : `[${quoteKey(frame.key)}]`;
}

function quoteKey(key: string): string {
  return JSON.stringify(key.length > MAX_QUOTED_KEY_CHARS ? `${key.slice(0, MAX_QUOTED_KEY_CHARS)}…` : key);
}
