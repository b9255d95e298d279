/**
 * The `/reconvert` comment command.
 *
 * Grammar: the whole comment, apart from surrounding whitespace (and surrounding backticks, as Atlantis
 * strips them), is one line `/reconvert [IMAGE ...]`. Words are split shell-like (spaces; '…' and "…"
 * quotes; backslash escapes) by a tokenizer that only reads text: nothing is expanded or executed.
 * A comment with more than one non-empty line is not a command (Atlantis ignores those too), so quoting
 * a command inside a longer discussion never triggers it. No image means "all images of the change";
 * the caller decides what that covers.
 */

export type ParsedCommand = { kind: 'reconvert'; images: string[] } | { kind: 'invalid'; message: string };

export const COMMAND_NAME = '/reconvert';
export const MAX_COMMAND_IMAGES = 50;
export const MAX_IMAGE_REFERENCE_CHARS = 512;

/**
 * Characters of an image reference (`[scheme://]host[:port]/path[:tag][@digest]`, DUCC's `*` wildcard
 * tags, `[...]` around IPv6 hosts). It must start with a letter, digit or `[`, so options (`-x`) and shell
 * syntax (`$(…)`, `;`, quotes) are never taken for an image.
 */
const IMAGE_REFERENCE = /^[A-Za-z0-9[][A-Za-z0-9._\-/:@*[\]]*$/;

/**
 * Parses a comment. Returns undefined when it is not a command at all (the bot stays silent), `invalid`
 * with a message meant for a reply comment when it is a malformed command. Never throws.
 */
export function parseCommand(body: string): ParsedCommand | undefined {
  try {
    return parse(body);
  } catch {
    // Defensive: the parser has no known throwing path; a bug must not take the webhook handler down.
    return undefined;
  }
}

function parse(body: string): ParsedCommand | undefined {
  if (typeof body !== 'string') return undefined;
  let text = body.trim();
  // One line only; checked before removing backticks, so a fenced block quoting the command is no command.
  if (/[\r\n\u2028\u2029]/.test(text)) return undefined;
  // Atlantis strips surrounding backticks (`atlantis plan` written as inline code).
  if (text.length >= 2 && text.startsWith('`') && text.endsWith('`')) text = text.replace(/^`+|`+$/g, '').trim();
  if (!new RegExp(`^${COMMAND_NAME}(?=\\s|$)`, 'i').test(text)) return undefined;

  const words = tokenize(text.slice(COMMAND_NAME.length));
  if (typeof words === 'string') return { kind: 'invalid', message: words };
  if (words.length > MAX_COMMAND_IMAGES) {
    return { kind: 'invalid', message: `Too many images: ${words.length} given, at most ${MAX_COMMAND_IMAGES} per \`${COMMAND_NAME}\` command.` };
  }
  const images: string[] = [];
  for (const word of words) {
    const problem = imageProblem(word);
    if (problem !== undefined)
      return {
        kind: 'invalid',
        message: `${problem}. Usage: \`${COMMAND_NAME} [IMAGE ...]\`, e.g. \`${COMMAND_NAME} https://registry.example.org/group/image:1.0\`.`,
      };
    if (!images.includes(word)) images.push(word);
  }
  return { kind: 'reconvert', images };
}

function imageProblem(word: string): string | undefined {
  if (word === '') return 'An empty image name was given';
  if (word.length > MAX_IMAGE_REFERENCE_CHARS) return `An image reference is longer than ${MAX_IMAGE_REFERENCE_CHARS} characters`;
  // Control characters (C0, DEL, C1), whitespace and format characters such as zero-width spaces.
  if (/[\p{Cc}\p{Cf}\p{Z}\s]/u.test(word)) return `${quote(word)} contains whitespace or control characters`;
  if (word.startsWith('-')) return `Options such as ${quote(word)} are not supported`;
  if (!IMAGE_REFERENCE.test(word)) return `${quote(word)} is not an image reference`;
  return undefined;
}

/**
 * Splits like a POSIX shell without expansions: whitespace separates words; '…' keeps everything
 * literally; "…" keeps everything but `\"`, `\\`, `\$` and `` \` ``; a backslash outside quotes escapes the
 * next character. Returns an error message (a string) for an unterminated quote or a trailing backslash.
 */
function tokenize(text: string): string[] | string {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (char === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) return 'Unterminated single quote.';
      word += text.slice(i + 1, end);
      i = end;
    } else if (char === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && j + 1 < text.length && '"\\$`'.includes(text[j + 1]!)) j++;
        word += text[j];
      }
      if (j >= text.length) return 'Unterminated double quote.';
      i = j;
    } else if (char === '\\') {
      if (i + 1 >= text.length) return 'Trailing backslash.';
      word += text[++i];
    } else {
      word += char;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** A user-supplied word, shortened and made safe to show inside inline code in a reply. */
function quote(word: string): string {
  const shown = word.replace(/[\p{Cc}\p{Cf}`]/gu, '?');
  return `\`${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown}\``;
}
