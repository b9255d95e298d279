import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { extractLayer } from '../../unpack/extract-layer.ts';
import { releaseIdleWriters } from '../../unpack/file-writer.ts';
import { collectGarbage } from '../../util/collect-garbage.ts';
import type { LayerUnpackResult } from '../../unpack/tree-types.ts';
import { DuccError } from '../../util/errors.ts';
import type { LayerBatch, LayerMetadata } from '../publisher.ts';
import { removeTree } from '../remove-tree.ts';
import { checkNew } from './paths.ts';
import { staleStaging } from '../stale-staging.ts';

/** Where layers are unpacked before their ingest, unless the config says otherwise. */
export const DEFAULT_STAGING_DIR = '/var/tmp/ducc-gitops';

/** A layer unpacked in local staging, waiting for its ingest. */
export interface StagedLayer {
  layerDir: string;
  /** The local directory holding `layerfs/` and `.metadata/`. */
  local: string;
  replace: boolean;
}

/**
 * Local staging of the cvmfs publishers: each layer is unpacked by the one extractor of unpack/ (so
 * both publishers apply the same entry rules) into `<root>/<pid>-*`, with its `.metadata/` files, and
 * later streamed into an ingest. Staging of processes that are gone is removed by `removeStale`.
 */
export class LayerStaging {
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  /**
   * Runs `work` with a batch that stages layers, then `publish(staged)` with every layer staged whole
   * (even when work failed: a retry need not fetch them again), then rethrows work's error. The staging
   * is removed in the end.
   */
  async run<T>(work: (batch: LayerBatch) => Promise<T>, publish: (staged: StagedLayer[]) => Promise<void>): Promise<T> {
    const staged: StagedLayer[] = [];
    // One staging directory per image, made by the first layer: layers are added concurrently, so the
    // promise is shared (`stage ??= await make()` made one per layer that started before the first had
    // its directory, and only the last was removed).
    let stage: Promise<string> | undefined;
    const batch: LayerBatch = {
      add: async (layerDir: string, tar: Readable, metadata: LayerMetadata, options?: { replace?: boolean }): Promise<LayerUnpackResult> => {
        let rel: string;
        try {
          rel = checkNew(layerDir);
          stage ??= this.#makeStage();
          await stage;
        } catch (error) {
          tar.destroy();
          throw error;
        }
        const local = await mkdtemp(path.join(await stage, 'layer-'));
        const layerfs = path.join(local, 'layerfs');
        await mkdir(layerfs, { mode: 0o755 });
        const result = await extractLayer(tar, layerfs, { label: `layer sha256:${rel.split('/').at(-1)}` });
        await mkdir(path.join(local, '.metadata'), { mode: 0o755 });
        for (const [name, bytes] of Object.entries(metadata(result))) {
          if (name === '' || name === '.' || name === '..' || name.includes('/')) {
            throw new DuccError('BOT_ERR_PUBLISH', `invalid layer metadata file name '${name}'`);
          }
          await writeFile(path.join(local, '.metadata', name), bytes, { mode: 0o644 });
        }
        staged.push({ layerDir: rel, local, replace: options?.replace ?? false });
        return result;
      },
    };
    try {
      let outcome: { value: T } | { error: unknown };
      try {
        outcome = { value: await work(batch) };
      } catch (error) {
        outcome = { error };
      }
      // The writer threads of the unpacking are not needed by the ingests and the flat tree that follow,
      // nor the unpacking's garbage: the ingests and the flat tree come on top (see collect-garbage.ts).
      await releaseIdleWriters();
      collectGarbage();
      if (staged.length > 0) await publish(staged);
      if ('error' in outcome) throw outcome.error;
      return outcome.value;
    } finally {
      const dir = await stage?.catch(() => undefined);
      if (dir !== undefined) await removeTree(dir);
    }
  }

  /** Runs `work` with a fresh directory of this process's staging, removed afterwards. */
  async withScratch<T>(work: (dir: string) => Promise<T>): Promise<T> {
    const dir = await this.#makeStage();
    try {
      return await work(dir);
    } finally {
      await removeTree(dir);
    }
  }

  /** Staging of processes that are gone (by the pid its name starts with), as absolute paths. */
  stale(): Promise<string[]> {
    return staleStaging(this.#root);
  }

  /** Removes the staging of processes that are gone. */
  async removeStale(): Promise<void> {
    for (const dir of await this.stale()) await removeTree(dir);
  }

  async #makeStage(): Promise<string> {
    await mkdir(this.#root, { recursive: true, mode: 0o700 });
    return mkdtemp(path.join(this.#root, `${process.pid}-`));
  }
}
