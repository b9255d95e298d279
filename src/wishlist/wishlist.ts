import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node } from 'yaml';
import { DuccError, errorMessage } from '../util/errors.ts';
import { parseImageReference, formatOutputImage, wholeName, isWildcard, type ImageReference } from './image-reference.ts';
import { isValidGlob } from './ignore-errors.ts';

/** One problem found in a wish list, located in the file. */
export interface WishlistProblem {
  severity: 'error' | 'warning';
  /** 1-based line and column in the wish-list file (0 when the problem is about the whole file). */
  line: number;
  column: number;
  message: string;
  /** The input entry the problem is about, when there is one. */
  wish?: string;
}

/** One image the wish list asks for (DUCC's "wish"), with everything needed to convert it. */
export interface Wish {
  /** The entry as written in `input:`. */
  input: string;
  image: ImageReference;
  cvmfsRepo: string;
  outputFormat?: string;
  /** Account that pushes thin images (recipe `user:`). */
  user?: string;
  /** Where the entry is in the file, for error messages. */
  source: { file: string; line: number; column: number };
}

export interface Wishlist {
  file: string;
  version: number | undefined;
  user?: string;
  cvmfsRepo?: string;
  outputFormat?: string;
  /** Valid wishes, de-duplicated, in file order. Invalid entries are not here; they are in `problems`. */
  wishes: Wish[];
  /** DUCC 2026's `ignoreErrors:` globs (well-formed ones): wishes whose failures do not fail the run (ignore-errors.ts). */
  ignoreErrors?: string[];
  problems: WishlistProblem[];
}

const KNOWN_KEYS = new Set(['version', 'user', 'cvmfs_repo', 'output_format', 'input', 'ignoreErrors']);
// `cvmfs_repo` is a repository name (a domain) with an optional sub-directory (DUCC 2026: `repo/subdir`).
const CVMFS_REPO = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?:\/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$/;

/**
 * Parses and validates a wish list (DUCC recipe v1). Never throws on bad content: every problem is
 * collected with its line and column, and the wishes that are valid are returned so that one bad entry
 * does not stop the others.
 */
export function parseWishlist(text: string, file: string): Wishlist {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: WishlistProblem[] = [];
  const at = (node: Node | null | undefined): { line: number; column: number } => {
    const offset = node?.range?.[0];
    if (offset === undefined) return { line: 0, column: 0 };
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  const problem = (severity: WishlistProblem['severity'], node: Node | null | undefined, message: string, wish?: string) =>
    problems.push({ severity, ...at(node), message, ...(wish === undefined ? {} : { wish }) });

  const result: Wishlist = { file, version: undefined, wishes: [], problems };
  for (const error of doc.errors) {
    // Errors found only at the end (an unclosed quote) point past the last line; show the last line instead.
    const pos = lineCounter.linePos(Math.min(error.pos[0], text.trimEnd().length));
    problems.push({ severity: 'error', line: pos.line, column: pos.col, message: `YAML syntax: ${firstLine(error.message)}` });
  }
  if (doc.errors.length > 0) return result;

  const root = doc.contents;
  if (!isMap(root)) {
    problem('error', root, 'the wish list must be a YAML mapping with the keys version, cvmfs_repo and input');
    return result;
  }

  const field = (key: string): Node | undefined => {
    const pair = root.items.find((item) => isScalar(item.key) && item.key.value === key);
    return (pair?.value as Node | null | undefined) ?? undefined;
  };
  const stringField = (key: string): string | undefined => {
    const node = field(key);
    if (node === undefined || (isScalar(node) && node.value === null)) return undefined;
    if (isScalar(node) && (typeof node.value === 'string' || typeof node.value === 'number')) return String(node.value);
    problem('error', node, `'${key}' must be a string`);
    return undefined;
  };

  for (const item of root.items) {
    const key = isScalar(item.key) ? String(item.key.value) : undefined;
    if (key === undefined || !KNOWN_KEYS.has(key)) {
      problem('warning', item.key as Node, `unknown key '${key ?? '?'}' is ignored`);
    }
  }

  const versionNode = field('version');
  if (versionNode === undefined) {
    problem('error', root, "missing key 'version' (the only wish-list version is 1: add 'version: 1')");
  } else if (!isScalar(versionNode) || Number(versionNode.value) !== 1 || typeof versionNode.value === 'boolean') {
    problem('error', versionNode, `unknown wish-list version '${isScalar(versionNode) ? String(versionNode.value) : '?'}' (only version 1 exists)`);
  } else {
    result.version = 1;
  }

  const user = stringField('user');
  if (user !== undefined) result.user = user;
  const outputFormat = stringField('output_format');
  if (outputFormat !== undefined && outputFormat !== '') result.outputFormat = outputFormat;

  const cvmfsRepoNode = field('cvmfs_repo');
  const cvmfsRepo = stringField('cvmfs_repo');
  if (cvmfsRepoNode === undefined) {
    problem('error', root, "missing key 'cvmfs_repo' (the CVMFS repository to publish into, e.g. unpacked.cern.ch)");
  } else if (cvmfsRepo !== undefined) {
    if (!CVMFS_REPO.test(cvmfsRepo) || cvmfsRepo.split('/').some((part) => part === '..' || part === '.')) {
      problem('error', cvmfsRepoNode, `'cvmfs_repo' value '${cvmfsRepo}' is not a repository name (e.g. unpacked.cern.ch or unpacked.cern.ch/subdir)`);
    } else {
      result.cvmfsRepo = cvmfsRepo;
    }
  }

  const ignoreNode = field('ignoreErrors');
  if (ignoreNode !== undefined && !(isScalar(ignoreNode) && ignoreNode.value === null)) {
    if (!isSeq(ignoreNode)) problem('error', ignoreNode, "'ignoreErrors' must be a list of globs such as 'https://registry.example.org/team/*:*'");
    else {
      result.ignoreErrors = [];
      for (const item of ignoreNode.items as Node[]) {
        if (!isScalar(item) || typeof item.value !== 'string') problem('warning', item, 'each ignoreErrors entry must be a string; this one is ignored');
        else if (!isValidGlob(item.value)) problem('warning', item, `ignoreErrors pattern '${item.value}' is malformed (filepath.Match syntax); it is ignored`);
        else result.ignoreErrors.push(item.value);
      }
    }
  }

  const inputNode = field('input');
  if (inputNode === undefined) {
    problem('error', root, "missing key 'input' (the list of images to convert)");
    return result;
  }
  if (!isSeq(inputNode)) {
    problem('error', inputNode, "'input' must be a list of image references");
    return result;
  }

  const seen = new Map<string, number>();
  for (const itemNode of inputNode.items) {
    const node = itemNode as Node;
    if (!isScalar(node) || typeof node.value !== 'string') {
      problem('error', node, 'each input entry must be a string such as https://registry.hub.docker.com/library/ubuntu:22.04 or oci:/srv/layouts/app:1.0');
      continue;
    }
    const input = node.value;
    let image: ImageReference;
    try {
      image = parseImageReference(input);
    } catch (error) {
      problem('error', node, errorMessage(error), input);
      continue;
    }
    const key = wholeName(image);
    const firstLineSeen = seen.get(key);
    if (firstLineSeen !== undefined) {
      problem('warning', node, `duplicate of the entry on line ${firstLineSeen}; it is converted once`, input);
      continue;
    }
    const { line, column } = at(node);
    seen.set(key, line);

    if (outputFormat !== undefined) {
      const sample = isWildcard(image) ? { ...image, tag: image.tag!.replaceAll('*', 'x') } : image;
      try {
        parseImageReference(formatOutputImage(outputFormat, sample));
      } catch (error) {
        problem('error', field('output_format'), `output_format gives an invalid thin image name for this entry: ${errorMessage(error)}`, input);
        continue;
      }
    }
    if (outputFormat === undefined && image.source !== undefined && image.source.kind !== 'dogestry') {
      // DUCC's default thin image name, $(scheme)://$(registry)/..., names no place to write to for these.
      problem(
        'warning',
        node,
        `a ${image.source.kind} input has no default thin image name: set output_format (e.g. 'oci:/srv/thin/$(repository):$(tag)') or convert with --skip-thin-image`,
        input,
      );
    }
    if (result.cvmfsRepo === undefined) continue;
    result.wishes.push({
      input,
      image,
      cvmfsRepo: result.cvmfsRepo,
      ...(outputFormat === undefined ? {} : { outputFormat }),
      ...(user === undefined ? {} : { user }),
      source: { file, line, column },
    });
  }
  if (inputNode.items.length === 0) problem('warning', inputNode, "'input' is empty: nothing to convert");
  return result;
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/** `file:line:col: severity: message` lines, for terminals and MR reports. */
export function formatProblem(problem: WishlistProblem, file: string): string {
  const where = problem.line > 0 ? `${file}:${problem.line}:${problem.column}` : file;
  return `${where}: ${problem.severity}: ${problem.message}`;
}

export function hasErrors(wishlist: Wishlist): boolean {
  return wishlist.problems.some((p) => p.severity === 'error');
}

/** Reads a wish list that must be fully valid (used where a partial list makes no sense). */
export function assertValid(wishlist: Wishlist): void {
  const errors = wishlist.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) {
    throw new DuccError('BOT_ERR_WISHLIST', errors.map((p) => formatProblem(p, wishlist.file)).join('\n'));
  }
}
