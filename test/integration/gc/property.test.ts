/**
 * Garbage collection never removes what is reachable, and converges, over seeded random sequences of
 * tag moves, conversions, removals, gc runs with random grace periods, crashed conversions and gc runs,
 * and conversions racing a gc (directory publisher; see test/support/gc-property.ts). A failure names its
 * seed and the steps that led to it.
 */
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { propertyImages, runGcProperty } from '../../support/gc-property.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { asTestContext, suiteCleanup, tempDir } from '../../support/tmp-dir.ts';
import type { BuiltImage } from '../../support/direct-push.ts';
import { DirectoryPublisher } from '../../../src/publish/directory-publisher.ts';
import { createLogger } from '../../../src/util/logger.ts';

const REPO = 'property.example.org';
const SEEDS = [1, 2, 3];

describe('gc property: nothing reachable is ever removed (directory publisher)', () => {
  const suite = suiteCleanup();
  let registry: TestRegistry;
  let images: BuiltImage[];
  before(async () => {
    registry = await startRegistry(asTestContext(suite));
    images = await propertyImages();
  });
  after(() => suite.runAll());

  for (const seed of SEEDS) {
    it(`seed ${seed}`, async (t) => {
      const dir = await tempDir(t);
      const root = join(dir, 'cvmfs');
      const history = await runGcProperty(
        {
          registryHost: registry.host,
          cvmfsRepo: REPO,
          publisher: () => new DirectoryPublisher({ root, repository: REPO, sync: false }),
          publisherArgs: ['--repo-root', root],
          workDir: dir,
          conversionFlags: { repoRoot: root },
          stagingDirs: [join(root, '.ducc-staging', REPO)],
          logger: createLogger({ level: 'silent' }),
        },
        images,
        { seed, steps: 24, weights: { move: 5, push: 2, convert: 2, delete: 1, gc: 4, 'crash-convert': 1, 'crash-gc': 1, 'convert-and-gc': 2 }, cleanup: t },
      );
      t.diagnostic(history.join(' → '));
    });
  }
});
