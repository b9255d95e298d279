/**
 * The property test of garbage collection (test/support/gc-property.ts) on a real CernVM-FS 2.12 stratum
 * 0, shorter than with the directory publisher: tag moves, conversions, removals, gc runs with random
 * grace periods, `ducc convert` and `ducc gc` SIGKILLed at random moments, a conversion racing a gc;
 * every public name resolves and every published manifest's layers are there after each step, nothing
 * reachable is removed, and the end converges; `cvmfs_server check` passes.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { propertyImages, runGcProperty } from '../support/gc-property.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { createRepository, type TestRepository } from '../support/stratum0.ts';
import { tempDir } from '../support/tmp-dir.ts';
import { CvmfsServerPublisher } from '../../src/publish/cvmfs/cvmfs-publisher.ts';
import { createLogger } from '../../src/util/logger.ts';

describe('gc property on a real stratum 0', () => {
  let registry: TestRegistry;
  let repo: TestRepository;
  let work: string;
  const cleanups: (() => Promise<void>)[] = [];
  const suite = { after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext;

  before(async () => {
    registry = await startRegistry(suite);
    repo = await createRepository(suite, 'gcprop');
    work = await tempDir(suite);
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('seed 11', async (t) => {
    const logger = createLogger({ level: 'silent' });
    const config = join(work, 'ducc.yaml');
    await writeFile(config, ['publisher:', '  kind: cvmfs', `  lockDir: ${work}`, `  stagingDir: ${join(work, 'staging')}`, ''].join('\n'));
    const history = await runGcProperty(
      {
        registryHost: registry.host,
        cvmfsRepo: repo.name,
        publisher: () => new CvmfsServerPublisher({ repository: repo.name, lockDir: work, stagingDir: join(work, 'staging'), logger }),
        publisherArgs: ['--config', config],
        workDir: work,
        conversionFlags: { config },
        stagingDirs: [join(work, 'staging', repo.name)],
        logger,
      },
      await propertyImages(),
      { seed: 11, steps: 10, weights: { move: 4, convert: 1, delete: 1, gc: 3, 'crash-convert': 1, 'crash-gc': 1, 'convert-and-gc': 1 }, cleanup: t },
    );
    t.diagnostic(history.join(' → '));
    await repo.check();
  });
});
