import type { Logger } from 'pino';
import type { ConvertedImage } from '../convert/convert-image.ts';
import { RegistryClient } from '../registry/client.ts';
import { repositoryRef } from '../sources/registry-source.ts';
import { CredentialStore } from '../registry/credentials.ts';
import { DuccError } from '../util/errors.ts';
import { secretFromEnv } from '../util/secrets.ts';
import { formatOutputImage, parseImageReference, type ImageReference } from '../wishlist/image-reference.ts';
import type { Wishlist } from '../wishlist/wishlist.ts';
import { buildThinImage, pushThinImage } from './thin-image.ts';

/**
 * Thin images of a wish list: pushed as its `user` with DUCC_OUTPUT_REGISTRY_PASS(_FILE), and looked up
 * (one manifest HEAD) to tell whether an interrupted push must be redone. Shared by the CLI and the bot.
 */
export function thinPusher(wishlist: Pick<Wishlist, 'user' | 'outputFormat' | 'cvmfsRepo'>, env: NodeJS.ProcessEnv, logger: Logger) {
  const clientFor = (outputName: string) => {
    const password = secretFromEnv(env, 'DUCC_OUTPUT_REGISTRY_PASS');
    if (!wishlist.user || password === undefined) {
      throw new DuccError(
        'BOT_ERR_THIN',
        "pushing the thin image needs the wish list's 'user' and DUCC_OUTPUT_REGISTRY_PASS or DUCC_OUTPUT_REGISTRY_PASS_FILE (or pass --skip-thin-image)",
      );
    }
    const output = parseImageReference(outputName);
    const credentials = new CredentialStore();
    credentials.set(output.registry, { username: wishlist.user, password });
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
      return (await client.headManifest(repositoryRef(output), output.tag)) !== undefined;
    },
  };
}
