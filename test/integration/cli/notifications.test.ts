/** `ducc convert -n FILE`: DUCC's JSON-lines notifications, written by the real CLI; and a failing layer. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry } from '../../support/registry.ts';
import { exists, expectExit, flatPath, hexOf, layerPath, pushImage, runCli, tempDir, wishlistYaml } from './cli-support.ts';

const REPO = 'notify.example.org';
/** Go `_2 Jan 2006 - 15:04:05.000`. */
const GO_TIME = /^[ 1-3]\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} - \d{2}:\d{2}:\d{2}\.\d{3}$/;

it('ducc convert -n writes one JSON line per step in DUCC order, string values only, each with a time', async (t) => {
  const registry = await startRegistry(t);
  const base = [
    { name: 'etc/', type: 'directory' as const },
    { name: 'etc/base', content: 'base' },
  ];
  const first = await pushImage(t, registry, 'n/first', '1', [base, [{ name: 'first', content: '1' }]]);
  const second = await pushImage(t, registry, 'n/second', '2', [base, [{ name: 'second', content: '2' }]]);
  const root = await tempDir(t);
  const wishlist = join(root, 'wishlist.yaml');
  await writeFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/n/first:1`, `http://${registry.host}/n/second:2`]));
  const file = join(root, 'notifications.jsonl');

  expectExit(await runCli(['convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--skip-thin-image', '-n', file, '--max-concurrent-downloads', '1']), 0);

  const text = await readFile(file, 'utf8');
  assert.ok(text.endsWith('\n'));
  const lines = text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const line of lines) {
    for (const [key, value] of Object.entries(line)) assert.equal(typeof value, 'string', `${key} of ${JSON.stringify(line)}`);
    assert.match(line['time'] as string, GO_TIME);
  }
  const notes = lines as Record<string, string>[];

  const expectImage = (image: typeof first, path: string, newLayers: string[]) => {
    const publicName = `${registry.host}/${path}`;
    const request = `http://${registry.host}/${path}`;
    const mine = notes.filter((n) => n['image'] === publicName || n['image_request'] === request);
    // publish_layer comes once the image's layers are published, together (the cvmfs publisher ingests
    // them in one go), after every layer's conversion.
    const layerSteps = [
      ...newLayers.flatMap((digest) => [
        ['start_layer_conversion', hexOf(digest)],
        ['end_layer_conversion', hexOf(digest)],
      ]),
      ...newLayers.map((digest) => ['publish_layer', hexOf(digest)]),
    ];
    assert.deepEqual(
      mine.map((n) => [n['action'], n['layer'] ?? n['layer_digest'] ?? n['image_request']]),
      [...layerSteps, ['start_flat_conversion', request], ['end_flat_conversion', request], ['publish_flat_image', request]],
    );
    for (const digest of newLayers) {
      const [start, end] = ['start_layer_conversion', 'end_layer_conversion'].map((action) =>
        mine.find((n) => n['action'] === action && n['layer'] === hexOf(digest))!,
      );
      assert.match(start!['id']!, /^[0-9a-f-]{36}$/);
      assert.equal(end!['id'], start!['id'], 'start and end of a layer share their id');
      assert.equal(end!['status'], 'ok');
      assert.match(end!['time_elapsed_s']!, /^\d+\.\d{6}$/);
      assert.match(end!['size_bytes']!, /^[1-9]\d*$/);
    }
    const [flatStart, flatEnd, flatPublished] = mine.slice(-3);
    assert.equal(flatEnd!['id'], flatStart!['id']);
    assert.notEqual(flatStart!['id'], undefined);
    assert.match(flatEnd!['time_elapsed_s']!, /^\d+\.\d{6}$/);
    assert.equal(flatPublished!['public_path'], publicName);
    assert.equal(flatPublished!['private_path'], flatPath(image.configDigest));
    return mine;
  };
  const firstNotes = expectImage(first, 'n/first:1', first.layerDigests);
  // The shared base layer was converted with the first image: only the second's own layer is new.
  const secondNotes = expectImage(second, 'n/second:2', [second.layerDigests[1]!]);
  assert.equal(firstNotes.length + secondNotes.length, notes.length, 'no other notifications');
  assert.ok(notes.indexOf(firstNotes.at(-1)!) < notes.indexOf(secondNotes[0]!), 'images one after the other');
  assert.equal(new Set(notes.map((n) => n['id']).filter(Boolean)).size, 5, 'one id per layer conversion and per flat conversion');

  // An up-to-date run appends nothing.
  expectExit(await runCli(['convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--skip-thin-image', '-n', file]), 0);
  assert.equal(await readFile(file, 'utf8'), text);
});

it('a failing layer fails its image: an error notification, no further layer started, nothing of it after the run', async (t) => {
  const registry = await startRegistry(t);
  const bad = await pushImage(t, registry, 'n/bad', '1', [
    [{ name: '../escape', content: 'x' }],
    [{ name: 'second', content: '2' }],
    [{ name: 'third', content: '3' }],
  ]);
  const good = await pushImage(t, registry, 'n/good', '1', [[{ name: 'good', content: 'g' }]]);
  const root = await tempDir(t);
  const wishlist = join(root, 'wishlist.yaml');
  await writeFile(wishlist, wishlistYaml(REPO, [`http://${registry.host}/n/bad:1`, `http://${registry.host}/n/good:1`]));
  const file = join(root, 'notifications.jsonl');
  const repo = join(root, 'cvmfs', REPO);

  const result = expectExit(
    await runCli(['convert', wishlist, '--repo-root', join(root, 'cvmfs'), '--skip-thin-image', '-n', file, '--max-concurrent-downloads', '1']),
    1,
  );

  assert.match(result.stdout, /^error: .*n\/bad:1: .*escape/m);
  assert.match(result.stdout, /^1 converted, 0 up to date, 1 failed$/m);
  const notes = (await readFile(file, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, string>);
  const badNotes = notes.filter((n) => n['image'] === `${registry.host}/n/bad:1` || n['image_request'] === `http://${registry.host}/n/bad:1`);
  assert.deepEqual(
    badNotes.map((n) => [n['action'], n['layer'], n['status']]),
    [
      ['start_layer_conversion', hexOf(bad.layerDigests[0]!), undefined],
      ['end_layer_conversion', hexOf(bad.layerDigests[0]!), 'error'],
    ],
  );
  assert.equal(badNotes[1]!['id'], badNotes[0]!['id']);
  assert.match(badNotes[1]!['error']!, /escape/);
  assert.match(badNotes[1]!['time_elapsed_s']!, /^\d+\.\d{6}$/);
  // Not even in the background while the next image converted.
  for (const digest of bad.layerDigests) assert.equal(await exists(join(repo, layerPath(digest))), false, `layer ${hexOf(digest)} published`);
  assert.equal(await exists(join(repo, registry.host, 'n/bad:1')), false);
  assert.ok(await exists(join(repo, flatPath(good.configDigest), 'good')));
  assert.equal(await exists(join(root, 'escape')), false);
});
