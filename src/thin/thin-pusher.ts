import type { Logger } from 'pino';
import type { ConvertedImage } from '../convert/convert-image.ts';
import { RegistryClient } from '../registry/client.ts';
import { CredentialStore } from '../registry/credentials.ts';
import { DuccError } from '../util/errors.ts';
import { secretFromEnv } from '../util/secrets.ts';
import { formatOutputImage, parseImageReference, type ImageReference } from '../wishlist/image-reference.ts';
import type { Wishlist } from '../wishlist/wishlist.ts';
import { buildThinImage, pushThinImage } from './thin-image.ts';

/**
 * Thin images of a wish list: pushed as its `user` with DUCC_OUTPUT_REGISTRY_PASS(_FILE), and looked up
 * (one manifest HEAD) to tell whether an interrupted push must be redone. Shared by the CLI and the bot.
 *
 * What the push needs is checked here, when the run starts, not after an image was downloaded and
 * published: a BOT_ERR_THIN (or BOT_ERR_CONFIG for an unreadable password file) before any download.
 */
export function thinPusher(wishlist: Pick<Wishlist, 'user' | 'outputFormat' | 'cvmfsRepo'>, env: NodeJS.ProcessEnv, logger: Logger) {
  const password = secretFromEnv(env, 'DUCC_OUTPUT_REGISTRY_PASS');
  const missing = [
    ...(wishlist.user ? [] : ["the wish list's 'user'"]),
    ...(password === undefined ? ['DUCC_OUTPUT_REGISTRY_PASS (or DUCC_OUTPUT_REGISTRY_PASS_FILE)'] : []),
  ];
  if (missing.length > 0) {
    throw new DuccError(
      'BOT_ERR_THIN',
      `pushing thin images needs ${missing.join(' and ')}; nothing was downloaded (to convert without thin images: --skip-thin-image, or convert.skipThinImage in the config of ducc serve)`,
    );
  }
  const clientFor = (outputName: string) => {
    const output = parseImageReference(outputName);
    const credentials = new CredentialStore();
    credentials.set(output.registry, { username: wishlist.user!, password: password! });
    return { output, client: new RegistryClient({ credentials, logger }) };
  };
  return {
    pushThinImage: async (converted: ConvertedImage) => {
      const outputName = formatOutputImage(wishlist.outputFormat, converted.image);
      const { client } = clientFor(outputName);
      const built = await buildThinImage({
        image: converted.image,
        cvmfsRepo: wishlist.cvmfsRepo!,
        layerDigests: converted.manifest.layers.map((layer) => layer.digest),
        config: converted.config,
      });
      return pushThinImage(client, outputName, built);
    },
    thinImageExists: async (image: ImageReference) => {
      const { output, client } = clientFor(formatOutputImage(wishlist.outputFormat, image));
      if (output.tag === undefined) return false;
      return (await client.headManifest({ scheme: output.scheme, registry: output.registry, repository: output.repository }, output.tag)) !== undefined;
    },
  };
}
