import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { availableParallelism } from 'node:os';
import { buildTar } from '../../support/build-tar.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { withEnv } from '../../support/with-env.ts';
import { extractLayer } from '../../../src/unpack/extract-layer.ts';
import { FileWriterSession } from '../../../src/unpack/file-writer.ts';
import { DEFAULT_EXTRACT_LIMITS, unpackSettingsFromEnv } from '../../../src/unpack/settings.ts';

describe('unpackSettingsFromEnv', () => {
  it('reads the DUCC_LIMIT_* variables and DUCC_WRITER_THREADS from the environment it is given', () => {
    assert.deepEqual(unpackSettingsFromEnv({ DUCC_LIMIT_LAYER_ENTRIES: '5', DUCC_LIMIT_PATH_DEPTH: '3', DUCC_WRITER_THREADS: '0' }), {
      limits: { ...DEFAULT_EXTRACT_LIMITS, maxEntries: 5, maxDepth: 3 },
      writerThreads: 0,
    });
    const cores = availableParallelism();
    assert.equal(unpackSettingsFromEnv({}).writerThreads, cores <= 1 ? 0 : Math.min(4, cores - 1));
  });

  it('refuses a malformed value, naming the variable', () => {
    assert.throws(() => unpackSettingsFromEnv({ DUCC_WRITER_THREADS: 'many' }), { code: 'BOT_ERR_CONFIG', message: /DUCC_WRITER_THREADS must be a number/ });
    assert.throws(() => unpackSettingsFromEnv({ DUCC_LIMIT_SYMLINK_HOPS: '-1' }), { code: 'BOT_ERR_CONFIG', message: /DUCC_LIMIT_SYMLINK_HOPS/ });
  });

  it('settings passed down win over the environment; without them the environment is read', async (t) => {
    const tar = await buildTar(Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, content: 'x' })));
    const settings = unpackSettingsFromEnv({ DUCC_LIMIT_LAYER_ENTRIES: '5' });

    await withEnv({ DUCC_LIMIT_LAYER_ENTRIES: '100' }, async () => {
      await assert.rejects(extractLayer(Readable.from([tar]), await tempDir(t), { label: 'layer sha256:feed', settings }), {
        code: 'BOT_ERR_LIMIT',
        message: /more than 5 entries/,
      });
    });
    await withEnv({ DUCC_LIMIT_LAYER_ENTRIES: '3' }, async () => {
      await assert.rejects(extractLayer(Readable.from([tar]), await tempDir(t), { label: 'layer sha256:feed' }), { message: /more than 3 entries/ });
    });
    assert.equal(FileWriterSession.open({ writerThreads: 0 }), undefined);
  });
});
