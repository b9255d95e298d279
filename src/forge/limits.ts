/**
 * Size limits of the forges' APIs and the helpers that cut text to them. Lengths are counted in UTF-16
 * code units (JavaScript `length`), which is never less than the number of characters the forges count,
 * so a cut text always fits; a surrogate pair is never split.
 */

/** GitHub commit status `description` ("description is too long (maximum is 140 characters)"). */
export const GITHUB_STATUS_DESCRIPTION_MAX_CHARS = 140;
/** GitHub issue/PR comment body (Atlantis `maxCommentLength`). */
export const GITHUB_COMMENT_MAX_CHARS = 65_536;
/** GitLab commit status `description`, `target_url`, `ref` and GitHub `target_url` (we apply it to both). */
export const STATUS_FIELD_MAX_CHARS = 255;
/** GitLab note body: the API limit is 1,000,000 characters; Atlantis keeps 100 in reserve. */
export const GITLAB_NOTE_MAX_CHARS = 1_000_000 - 100;

const ELLIPSIS = '…';

/** Cuts `text` to at most `max` code units, ending with `…` when something was cut. */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 0) return '';
  return `${cutAt(text, max - ELLIPSIS.length)}${ELLIPSIS}`;
}

/** `text.slice(0, end)` without leaving half of a surrogate pair at the end. */
function cutAt(text: string, end: number): string {
  if (end <= 0) return '';
  const last = text.charCodeAt(end - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? end - 1 : end);
}

/** Room kept for the closers of open blocks; beyond that they are dropped rather than the text cut further. */
const CLOSER_BUDGET = 256;
/** How far back from the hard limit we look for a line break to cut at. */
const LINE_BREAK_SEARCH = 2_000;

/**
 * Cuts a Markdown comment to at most `max` code units, keeping its head. When something is cut, the kept
 * part ends at a line break where one is close, any code fence and `<details>` block still open at the cut
 * is closed (so the rest of the page does not render as code or stay folded), and a note saying how much
 * was kept is appended.
 */
export function truncateMarkdown(text: string, max: number): string {
  if (text.length <= max) return text;
  // Preceded by a blank line, so that Markdown ends any HTML block (`</details>`) before it.
  const note = (kept: number): string => `\n${ELLIPSIS}report truncated: the first ${kept} of ${text.length} characters are shown.\n`;
  let end = max - note(max).length - CLOSER_BUDGET - 1;
  if (end <= 0) return cutAt(text, max);
  const lineBreak = text.lastIndexOf('\n', end - 1);
  if (lineBreak > 0 && end - lineBreak <= LINE_BREAK_SEARCH) end = lineBreak + 1;
  const head = cutAt(text, end);
  let closers = openBlockClosers(head);
  if (closers.length > CLOSER_BUDGET - 1) closers = '';
  const joiner = head.endsWith('\n') || head === '' ? '' : '\n';
  return `${head}${joiner}${closers}${note(head.length)}`;
}

/** The text that closes the code fence and `<details>` blocks left open at the end of `markdown`. */
export function openBlockClosers(markdown: string): string {
  let fence: { char: string; length: number } | undefined;
  let openDetails = 0;
  for (const line of markdown.split('\n')) {
    const fenceMatch = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (fence !== undefined) {
      // A closing fence: the same character, at least as long, nothing but spaces after it.
      if (fenceMatch && fenceMatch[1]![0] === fence.char && fenceMatch[1]!.length >= fence.length && fenceMatch[2]!.trim() === '') {
        fence = undefined;
      }
      continue;
    }
    if (fenceMatch && !(fenceMatch[1]![0] === '`' && fenceMatch[2]!.includes('`'))) {
      fence = { char: fenceMatch[1]![0]!, length: fenceMatch[1]!.length };
      continue;
    }
    openDetails += (line.match(/<details(?:\s[^>]*)?>/gi) ?? []).length;
    openDetails -= (line.match(/<\/details\s*>/gi) ?? []).length;
    if (openDetails < 0) openDetails = 0;
  }
  let closers = fence === undefined ? '' : `${fence.char.repeat(fence.length)}\n`;
  closers += '</details>\n'.repeat(openDetails);
  return closers;
}
