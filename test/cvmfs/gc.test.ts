/**
 * `ducc gc` with the cvmfs publisher on a real CernVM-FS 2.12 stratum 0 (a repository made with
 * `mkfs -z -g`: garbage-collectable, no automatic tags): removals in one publish per batch, the grace
 * period (injected clock), a dry run publishing nothing, thin-image layers kept, `cvmfs_server gc`
 * freeing the storage, a conversion racing a gc, and a gc that fails or is killed half-way.
 */
import { Sources } from '../../src/sources/sources.ts';
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildTar } from '../support/build-tar.ts';
import { buildImage, pushImage, type BuiltImage } from '../support/direct-push.ts';
import { repositoryProblems } from '../support/gc-repo.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { cvmfsServerShim, createRepository, type TestRepository } from '../support/stratum0.ts';
import { exists, tempDir } from '../support/tmp-dir.ts';
import { snapshotTree } from '../support/tree-snapshot.ts';
import { runCli, startCli, waitFor } from '../integration/crash/support.ts';
import { runConversion } from '../../src/cli/run-conversion.ts';
import { convertImage, DEFAULT_CONVERT_OPTIONS } from '../../src/convert/convert-image.ts';
import { collectGarbage } from '../../src/gc/collect.ts';
import { GC_SCHEDULE_PATH } from '../../src/gc/scan.ts';
import { NotificationWriter } from '../../src/metadata/notifications.ts';
import { CvmfsServerPublisher, type CvmfsServerPublisherOptions } from '../../src/publish/cvmfs/cvmfs-publisher.ts';
import type { Transaction } from '../../src/publish/publisher.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { CredentialStore } from '../../src/registry/credentials.ts';
import { parseImageReference } from '../../src/wishlist/image-reference.ts';
import { parseWishlist } from '../../src/wishlist/wishlist.ts';
import { createLogger } from '../../src/util/logger.ts';
import { DuccError } from '../../src/util/errors.ts';

const run = promisify(execFile);
const quiet = createLogger({ level: 'silent' });
const HOUR = 3600_000;
const T0 = Date.parse('2026-05-01T10:00:00Z');

/** A cvmfs publisher whose transactions can be held at a gate before they start. */
class GatedPublisher extends CvmfsServerPublisher {
  gate: Promise<void> | undefined;
  onTransaction?: () => void;
  override async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    this.onTransaction?.();
    if (this.gate !== undefined) await this.gate;
    return super.transaction(work);
  }
}

describe('ducc gc on a real stratum 0', () => {
  let registry: TestRegistry;
  let repo: TestRepository;
  let work: string;
  let server: Awaited<ReturnType<typeof cvmfsServerShim>>;
  let config: string;
  let images: Record<'a' | 'b' | 'c' | 'd', BuiltImage>;
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext;

  before(async () => {
    registry = await startRegistry(suite);
    repo = await createRepository(suite, 'gc', { garbageCollection: true });
    work = await tempDir(suite);
    server = await cvmfsServerShim(join(work, 'bin'));
    await run('mkdir', ['-p', join(work, 'locks')]);
    config = join(work, 'ducc.yaml');
    await writeFile(
      config,
      [
        'publisher:',
        '  kind: cvmfs',
        `  cvmfsServer: ${server.command}`,
        `  lockDir: ${join(work, 'locks')}`,
        `  stagingDir: ${join(work, 'staging')}`,
        '',
      ].join('\n'),
    );
    const base = await buildTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/os-release', content: 'ID=gc\n' },
    ]);
    const one = (name: string, content: Buffer | string) => buildTar([{ name, content }]);
    images = {
      // 1 MiB that does not compress: what cvmfs_server gc frees is measurable.
      a: buildImage([{ layers: [base, await one('big.bin', randomBytes(1 << 20))], config: { Cmd: ['a'] } }]),
      b: buildImage([{ layers: [base, await one('b', 'b')], config: { Cmd: ['b'] } }]),
      c: buildImage([{ layers: [await one('c', 'c')], config: { Cmd: ['c'] } }]),
      d: buildImage([{ layers: [await one('d', 'd')], config: { Cmd: ['d'] } }]),
    };
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const options = (): CvmfsServerPublisherOptions => ({
    repository: repo.name,
    cvmfsServer: server.command,
    lockDir: join(work, 'locks'),
    stagingDir: join(work, 'staging'),
    logger: quiet,
  });
  const publisher = () => new CvmfsServerPublisher(options());
  const convert = async (tags: string[], extra: { skipFlat?: boolean; env?: Record<string, string>; lines?: string[] } = {}) => {
    const text = [
      'version: 1',
      `cvmfs_repo: ${repo.name}`,
      ...(extra.lines ?? []),
      'input:',
      ...tags.map((tag) => `  - 'http://${registry.host}/${tag}'`),
    ].join('\n');
    const summary = await runConversion(
      parseWishlist(text, 'w.yaml'),
      { config, skipThinImage: extra.env === undefined, ...(extra.skipFlat ? { skipFlat: true } : {}) },
      extra.env ?? {},
      quiet,
    );
    assert.deepEqual(summary.failures, []);
  };
  const hex = (digest: string) => digest.slice(7);
  const flatOf = (image: BuiltImage) => `.flat/${hex(image.configDigests[0]!).slice(0, 2)}/${hex(image.configDigests[0]!)}`;
  const layerOf = (digest: string) => `.layers/${hex(digest).slice(0, 2)}/${hex(digest)}`;
  const publishes = async (since: number) =>
    (await server.calls()).slice(since).filter(([command]) => command === 'ingest' || command === 'publish' || command === 'transaction');
  const backendBytes = async () => Number((await run('du', ['-sb', `/srv/cvmfs/${repo.name}/data`])).stdout.split('\t')[0]);

  it('removes a moved tag’s flat tree and layer after the grace period, in one publish; cvmfs_server gc frees their storage', async () => {
    await pushImage(registry.host, 'gc/app', 'moved', images.a);
    await convert(['gc/app:moved']);
    await pushImage(registry.host, 'gc/app', 'moved', images.b);
    await convert(['gc/app:moved']);
    const garbage = [flatOf(images.a), layerOf(images.a.layerDigests[0]![1]!)].sort();

    const first = await collectGarbage(publisher(), { gracePeriodMs: HOUR, now: () => T0 });
    const schedule = JSON.parse(await readFile(join(repo.mount, GC_SCHEDULE_PATH), 'utf8')) as { items: Record<string, unknown> };
    const before = (await server.calls()).length;
    const last = await collectGarbage(publisher(), { gracePeriodMs: HOUR, now: () => T0 + HOUR });
    const calls = await publishes(before);

    assert.deepEqual(first.removed, []);
    assert.equal(first.publishes, 1, 'the schedule alone');
    assert.deepEqual(Object.keys(schedule.items).sort(), garbage);
    assert.deepEqual(last.removed.map((item) => item.path).sort(), garbage);
    assert.equal(calls.length, 1, calls.map((call) => call.join(' ')).join('\n'));
    const deletes = calls[0]!.flatMap((arg, i, all) => (all[i - 1] === '-d' ? [arg] : []));
    assert.deepEqual(deletes.sort(), garbage);
    for (const path of garbage) assert.equal(await exists(join(repo.mount, path)), false, path);
    assert.equal(await readlink(join(repo.mount, registry.host, 'gc/app:moved')), `../../${flatOf(images.b)}`);
    assert.ok((await stat(join(repo.mount, registry.host, 'gc/app:moved'))).isDirectory());
    assert.deepEqual(await repositoryProblems(publisher()), []);
    assert.ok(!(await repo.catalogs()).includes(flatOf(images.a)));
    await repo.check();

    const stored = await backendBytes();
    await publisher().collectBackendGarbage({ keepRevisions: 0 });
    const freed = stored - (await backendBytes());
    assert.ok(freed >= 1 << 20, `cvmfs_server gc freed ${freed} bytes, less than the 1 MiB file of the removed layer`);
    await repo.check();
  });

  it('a dry run publishes nothing and changes nothing on the mount', async () => {
    await pushImage(registry.host, 'gc/app', 'dry', images.c);
    await convert(['gc/app:dry']);
    await pushImage(registry.host, 'gc/app', 'dry', images.d);
    await convert(['gc/app:dry']);
    const tree = await snapshotTree(repo.mount);
    const before = (await server.calls()).length;

    const report = await collectGarbage(publisher(), { gracePeriodMs: 0, dryRun: true });

    assert.deepEqual(report.removed.map((item) => item.path).sort(), [flatOf(images.c), layerOf(images.c.layerDigests[0]![0]!)].sort());
    assert.deepEqual(await publishes(before), []);
    assert.deepEqual(await snapshotTree(repo.mount), tree);
  });

  it('keeps the layers a pushed thin image names, for an image without a public name (--skip-flat)', async (t) => {
    const output = await startRegistry(t, { htpasswd: { username: 'pusher', password: 'thin-pass' } });
    const thin = buildImage([{ layers: [await buildTar([{ name: 'thin-only', content: 'only the thin image needs me' }])], config: { Cmd: ['thin'] } }]);
    await pushImage(registry.host, 'gc/thin', '1', thin);
    await convert(['gc/thin:1'], {
      skipFlat: true,
      env: { DUCC_OUTPUT_REGISTRY_PASS: 'thin-pass' },
      lines: ['user: pusher', `output_format: 'http://${output.host}/thin/$(image)'`],
    });
    const layer = layerOf(thin.layerDigests[0]![0]!);

    const report = await collectGarbage(publisher(), { gracePeriodMs: 0 });

    assert.equal(await exists(join(repo.mount, layer, 'layerfs', 'thin-only')), true, 'named by the pushed thin.json, kept');
    assert.ok(!report.removed.some((item) => item.path === layer));
    assert.equal(await exists(join(repo.mount, registry.host, 'gc/thin:1')), false, 'the image has no public name');
    assert.deepEqual(await repositoryProblems(publisher()), []);
  });

  it('a conversion that reuses what a gc removes meanwhile publishes nothing, and succeeds when run again', async () => {
    await pushImage(registry.host, 'gc/race', '1', images.c);
    await convert(['gc/race:1']);
    await pushImage(registry.host, 'gc/race', '1', images.d);
    await convert(['gc/race:1']);
    await pushImage(registry.host, 'gc/race', '1', images.c);
    const converter = new GatedPublisher(options());
    let open!: () => void;
    converter.gate = new Promise<void>((resolve) => (open = resolve));
    const reached = new Promise<void>((resolve) => (converter.onTransaction = resolve));
    const client = new RegistryClient({ credentials: new CredentialStore(), logger: quiet });
    const image = parseImageReference(`http://${registry.host}/gc/race:1`);
    const convertWith = (p: CvmfsServerPublisher) =>
      convertImage(
        { sources: new Sources({ registry: client }), publisher: p, cvmfsRepo: repo.name, notifications: NotificationWriter.discard(), logger: quiet },
        image,
        {
          ...DEFAULT_CONVERT_OPTIONS,
          skipThinImage: true,
        },
      );

    const conversion = convertWith(converter).then(
      () => undefined,
      (error: unknown) => error,
    );
    await reached;
    const report = await collectGarbage(publisher(), { gracePeriodMs: 0 });
    open();
    const outcome = await conversion;

    assert.ok(report.removed.some((item) => item.path === flatOf(images.c)));
    assert.ok(outcome instanceof DuccError && /is gone .*garbage collection/.test(outcome.message), String(outcome));
    assert.equal(await readlink(join(repo.mount, registry.host, 'gc/race:1')), `../../${flatOf(images.d)}`);
    assert.deepEqual(await repositoryProblems(publisher()), []);
    converter.gate = undefined;
    await convertWith(converter);
    assert.equal(await readlink(join(repo.mount, registry.host, 'gc/race:1')), `../../${flatOf(images.c)}`);
    assert.deepEqual(await repositoryProblems(publisher()), []);
    await repo.check();
  });

  it('a removal publish that fails, then a gc SIGKILLed in its ingest: public names resolve, and the next gc converges', async (t) => {
    await pushImage(registry.host, 'gc/crash', '1', images.a);
    await convert(['gc/crash:1']);
    await pushImage(registry.host, 'gc/crash', '1', images.b);
    await convert(['gc/crash:1']);
    const garbage = [flatOf(images.a), layerOf(images.a.layerDigests[0]![1]!)];

    await server.failNext(['ingest']);
    const failed = await collectGarbage(publisher(), { gracePeriodMs: 0, batchSize: 1 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    await server.failNext([]);
    assert.ok(failed instanceof DuccError && /failed after removing 0 of 2 items/.test(failed.message), String(failed));
    assert.deepEqual(await repositoryProblems(publisher()), []);

    const before = (await server.calls()).length;
    const gc = startCli(t, ['gc', repo.name, '--config', config, '--grace-period', '0']);
    await waitFor(async () => (await server.calls()).slice(before).some(([command]) => command === 'ingest'), 60_000, 'the gc’s ingest', gc);
    // Killed inside its ingest (a publish takes seconds); had it finished first, what follows must hold all the same.
    gc.child.kill('SIGKILL');
    await gc.done;
    assert.deepEqual(await repositoryProblems(publisher()), []);

    const again = await runCli(t, ['gc', repo.name, '--config', config, '--grace-period', '0'], 0);

    assert.match(again.stdout, /^gc .*: \d+ removed/m);
    for (const path of garbage) assert.equal(await exists(join(repo.mount, path)), false, path);
    assert.deepEqual(await repositoryProblems(publisher()), []);
    await repo.check();
  });
});
