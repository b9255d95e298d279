/**
 * The conversion thread of `ducc serve` (see conversion-thread.ts): converts the images the main thread
 * sends, one at a time, with a registry client, publishers and thin-image pushers of its own, and sends
 * back the outcomes (or the error) and its log lines.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Writable } from 'node:stream';
import { createPublisher } from '../config/publisher-config.ts';
import { convertImage, convertMultiArch, type ConvertContext } from '../convert/convert-image.ts';
import { NotificationWriter } from '../metadata/notifications.ts';
import type { Publisher } from '../publish/publisher.ts';
import { RegistryClient } from '../registry/client.ts';
import { pullCredentials } from '../registry/pull-credentials.ts';
import { registrySettingsFromEnv } from '../registry/settings.ts';
import { Sources } from '../sources/sources.ts';
import { thinPusher } from '../thin/thin-pusher.ts';
import { createLogger } from '../util/logger.ts';
import { installYieldGate } from '../util/yield-gate.ts';
import { serializeError, type ConversionRequest, type FromConversionThread, type ToConversionThread } from './conversion-thread.ts';

const port = parentPort!;
const { env, level, gate } = workerData as { env: NodeJS.ProcessEnv; level: string; gate: SharedArrayBuffer };
// Step aside while the main thread answers webhooks (src/util/yield-gate.ts), here and in the threads started here.
installYieldGate(gate);

/** The conversion being run: its log lines go to the logger of the job that asked for it. */
let current: number | undefined;
const post = (message: FromConversionThread): void => port.postMessage(message);
const logger = createLogger({
  level,
  human: false,
  stream: new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') post({ kind: 'log', id: current, line });
      callback();
    },
  }),
});

let sources: Promise<Sources> | undefined;
const publishers = new Map<string, Promise<Publisher>>();

/** One publisher per configuration and cvmfs_repo, recovered once (as BotContext.publisherFor). */
function publisherFor(request: ConversionRequest): Promise<Publisher> {
  const key = JSON.stringify([request.publisher, request.cvmfsRepo]);
  let publisher = publishers.get(key);
  if (publisher === undefined) {
    publisher = (async () => {
      const made = await createPublisher(request.publisher, request.cvmfsRepo, logger);
      await made.recover();
      return made;
    })();
    publisher.catch(() => publishers.delete(key));
    publishers.set(key, publisher);
  }
  return publisher;
}

async function convert(request: ConversionRequest) {
  // The same sources for every request: a configuration does not change while ducc serve runs.
  sources ??= pullCredentials(env).then(
    (credentials) =>
      new Sources({
        registry: new RegistryClient({ credentials, logger }),
        settings: registrySettingsFromEnv(env),
        dogestryRemotes: request.sources.dogestryRemotes,
        env,
        cacheDir: request.sources.cacheDir,
        logger,
      }),
  );
  const imageSources = await sources;
  const thin = request.thin === undefined ? undefined : thinPusher({ ...request.thin, cvmfsRepo: request.cvmfsRepo }, env, logger, imageSources.sinks);
  const ctx: ConvertContext = {
    sources: imageSources,
    publisher: await publisherFor(request),
    cvmfsRepo: request.cvmfsRepo,
    notifications: NotificationWriter.discard(),
    logger,
    ...(thin ?? {}),
  };
  return request.options.multiArch ? convertMultiArch(ctx, request.image, request.options) : [await convertImage(ctx, request.image, request.options)];
}

/** Conversions run one after another, in the order they were asked for. */
let queue: Promise<void> = Promise.resolve();
port.on('message', (message: ToConversionThread) => {
  queue = queue.then(async () => {
    current = message.id;
    try {
      post({ kind: 'done', id: message.id, outcomes: await convert(message.request) });
    } catch (error) {
      post({ kind: 'failed', id: message.id, error: serializeError(error) });
    } finally {
      current = undefined;
    }
  });
});
