/**
 * A conversion and a garbage collection at the same time (directory publisher, one process each side
 * held at the worst moment): a conversion that found an unreferenced flat tree and layers present and
 * reuses them, while a gc with no grace period removes exactly those. Either order leaves every public
 * name resolvable and every published manifest's layers present; the conversion that lost the race
 * publishes nothing and succeeds when run again.
 */
import { Sources } from '../../../src/sources/sources.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { buildImage, pushImage, type BuiltImage } from '../../support/direct-push.ts';
import { repositoryProblems } from '../../support/gc-repo.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, exists, suiteCleanup, tempDir } from '../../support/tmp-dir.ts';
import { convertImage, DEFAULT_CONVERT_OPTIONS, type ConvertContext } from '../../../src/convert/convert-image.ts';
import { collectGarbage } from '../../../src/gc/collect.ts';
import { NotificationWriter } from '../../../src/metadata/notifications.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import type { Transaction } from '../../../src/publish/publisher.ts';
import { RegistryClient } from '../../../src/registry/client.ts';
import { CredentialStore } from '../../../src/registry/credentials.ts';
import { parseImageReference } from '../../../src/wishlist/image-reference.ts';
import { createLogger } from '../../../src/util/logger.ts';
import { isTemporary } from '../../../src/util/errors.ts';

const quiet = createLogger({ level: 'silent' });
const REPO = 'race.example.org';

/** A directory publisher whose transactions wait at a gate (opened by the test) before they start. */
class GatedPublisher extends DirectoryPublisher {
  gate: Promise<void> | undefined;
  readonly events: string[] = [];
  onTransaction?: () => void;

  override async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    this.onTransaction?.();
    if (this.gate !== undefined) await this.gate;
    return super.transaction(async (tx) => {
      this.events.push('transaction starts');
      return work(tx);
    });
  }
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('a conversion and a gc at the same time', () => {
  const suite = suiteCleanup();
  let registry: TestRegistry;
  let a: BuiltImage;
  let b: BuiltImage;
  let client: RegistryClient;

  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    a = buildImage([{ layers: [await buildTar([{ name: 'a', content: Buffer.alloc(2000, 'a') }])], config: { Cmd: ['a'] } }]);
    b = buildImage([{ layers: [await buildTar([{ name: 'b', content: Buffer.alloc(2000, 'b') }])], config: { Cmd: ['b'] } }]);
    client = new RegistryClient({ credentials: new CredentialStore(), logger: quiet });
  });
  after(() => suite.runAll());

  const flatOf = (image: BuiltImage) => `.flat/${image.configDigests[0]!.slice(7, 9)}/${image.configDigests[0]!.slice(7)}`;

  /** tag -> a, converted; tag -> b, converted (a's flat tree and layer unreferenced); tag -> a again in the registry. */
  const prepare = async (t: Parameters<typeof tempDir>[0], tag: string) => {
    const root = join(await tempDir(t), 'cvmfs');
    const make = () => new GatedPublisher({ root, repository: REPO, sync: false });
    const image = parseImageReference(`http://${registry.host}/race/app:${tag}`);
    const convert = (publisher: DirectoryPublisher) => {
      const ctx: ConvertContext = {
        sources: new Sources({ registry: client }),
        publisher,
        cvmfsRepo: REPO,
        notifications: NotificationWriter.discard(),
        logger: quiet,
      };
      return convertImage(ctx, image, { ...DEFAULT_CONVERT_OPTIONS, skipThinImage: true });
    };
    await pushImage(registry.host, 'race/app', tag, a);
    await convert(make());
    await pushImage(registry.host, 'race/app', tag, b);
    await convert(make());
    await pushImage(registry.host, 'race/app', tag, a);
    const link = join(root, REPO, registry.host, `race/app:${tag}`);
    return { root, make, convert, link };
  };

  it('gc first: the conversion that reused what gc removed publishes nothing, and succeeds when run again', async (t) => {
    const { root, make, convert, link } = await prepare(t, 'gc-first');
    const converter = make();
    const held = gate();
    converter.gate = held.promise;
    const reached = new Promise<void>((resolve) => (converter.onTransaction = resolve));

    const conversion = convert(converter);
    await reached; // the conversion found a's flat tree and layer present and is about to publish
    const report = await collectGarbage(make(), { gracePeriodMs: 0 });
    held.open();
    const outcome = await conversion.then(
      () => undefined,
      (error: unknown) => error,
    );

    assert.deepEqual(
      report.removed.map((item) => item.path).sort(),
      [flatOf(a), `.layers/${a.layerDigests[0]![0]!.slice(7, 9)}/${a.layerDigests[0]![0]!.slice(7)}`].sort(),
    );
    assert.ok(outcome instanceof Error, 'the conversion fails');
    assert.match(outcome.message, /is gone .*removed by a garbage collection/);
    assert.equal(isTemporary(outcome), true);
    assert.equal(await readlink(link), `../../${flatOf(b)}`, 'the public name still points at what it pointed at');
    assert.deepEqual(await repositoryProblems(make()), []);

    converter.gate = undefined;
    await convert(converter);
    assert.equal(await readlink(link), `../../${flatOf(a)}`);
    assert.equal(await exists(join(root, REPO, flatOf(a))), true);
    assert.deepEqual(await repositoryProblems(make()), []);
  });

  it('gc holding the lock: the conversion waits, then publishes nothing or everything, never a name without its tree', async (t) => {
    const { make, convert, link } = await prepare(t, 'gc-holds');
    const collector = make();
    const converter = make();
    const events: string[] = [];
    const gcHeld = gate();
    collector.gate = gcHeld.promise;
    const gcInside = new Promise<void>((resolve) => (collector.onTransaction = resolve));
    const conversionWaits = new Promise<void>((resolve) => (converter.onTransaction = resolve));

    const collecting = collectGarbage(collector, { gracePeriodMs: 0 }).then((report) => {
      events.push('gc done');
      return report;
    });
    await gcInside; // gc holds the lock exclusively, its first removal about to start
    const conversion = convert(converter).then(
      () => undefined,
      (error: unknown) => error,
    );
    await conversionWaits;
    gcHeld.open();
    const [report, outcome] = await Promise.all([collecting, conversion]);

    assert.equal(report.removed.length, 2);
    assert.deepEqual(converter.events, ['transaction starts']);
    assert.deepEqual(collector.events, ['transaction starts']);
    assert.ok(outcome instanceof Error, 'what the conversion reused is gone: it publishes nothing');
    assert.equal(await readlink(link), `../../${flatOf(b)}`);
    assert.deepEqual(await repositoryProblems(make()), []);
    await convert(make());
    assert.equal(await readlink(link), `../../${flatOf(a)}`);
    assert.deepEqual(await repositoryProblems(make()), []);
    assert.deepEqual(events, ['gc done']);
  });
});
