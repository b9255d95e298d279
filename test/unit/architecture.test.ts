/**
 * The import graph of src/ follows the folder layering below, as go-containerregistry checks its own
 * dependency rules (depcheck): a folder imports its own files and folders of LOWER layers only, never a
 * folder of its own layer or above. A new folder must be given a layer here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** Lowest first. Folders of one layer do not import each other. */
const LAYERS: readonly (readonly string[])[] = [
  ['util'],
  ['registry', 'layout'],
  ['wishlist', 'metadata', 'apptainer'],
  ['sources'],
  ['unpack'],
  ['publish'],
  ['convert'],
  ['thin'],
  ['gc'],
  ['state', 'forge'],
  ['config', 'jobs'],
  ['http'],
  // bot/serve.ts wires the HTTP face, the job worker and the bot together.
  ['bot'],
  ['cli'],
];

/** Imports allowed against the layering, each `from -> to` (files relative to src/). */
const EXCEPTIONS: readonly string[] = [];

const SRC = resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module a file names: static and type-only imports, re-exports, `import()` calls and `import('...')` types. */
function importsOf(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      found.push(node.arguments[0].text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const folderOf = (pathInSrc: string): string => pathInSrc.split('/')[0]!;
const layerOf = (folder: string): number => LAYERS.findIndex((layer) => layer.includes(folder));

/** `from -> to` for every import of one src/ file by another, with paths relative to src/. */
function importEdges(): string[] {
  const edges: string[] = [];
  for (const file of sourceFiles(SRC)) {
    for (const specifier of importsOf(file)) {
      if (!specifier.startsWith('.')) continue;
      const target = relative(SRC, resolve(dirname(file), specifier));
      edges.push(`${relative(SRC, file)} -> ${target}`);
    }
  }
  return edges;
}

test('every folder of src/ has a layer, and no file sits outside a folder', () => {
  const entries = readdirSync(SRC, { withFileTypes: true });

  const loose = entries.filter((entry) => !entry.isDirectory()).map((entry) => entry.name);
  const unplaced = entries.filter((entry) => entry.isDirectory() && layerOf(entry.name) === -1).map((entry) => entry.name);
  const gone = LAYERS.flat().filter((folder) => !entries.some((entry) => entry.isDirectory() && entry.name === folder));

  assert.deepEqual(loose, [], 'files directly in src/');
  assert.deepEqual(unplaced, [], 'folders without a layer: add them to LAYERS');
  assert.deepEqual(gone, [], 'LAYERS names folders that no longer exist');
});

test('no folder imports a folder of its own layer or above', () => {
  const edges = importEdges();

  const upward = edges.filter((edge) => {
    const [from, to] = edge.split(' -> ') as [string, string];
    const source = folderOf(from);
    const target = folderOf(to);
    if (source === target || EXCEPTIONS.includes(edge)) return false;
    return layerOf(target) >= layerOf(source);
  });

  assert.deepEqual(upward, [], `imports against the layering (lowest first: ${LAYERS.map((layer) => layer.join('/')).join(' < ')})`);
});

test('each exception still names an import that exists', () => {
  const edges = new Set(importEdges());

  const stale = EXCEPTIONS.filter((edge) => !edges.has(edge));

  assert.deepEqual(stale, [], 'remove exceptions for imports that are gone');
});

test('the import scanner sees dynamic imports', () => {
  const edges = importEdges();

  // cli/main.ts loads the serve stack on demand.
  assert.ok(edges.includes('cli/main.ts -> bot/serve.ts'));
});
