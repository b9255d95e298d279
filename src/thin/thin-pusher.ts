import type { Logger } from 'pino';
import type { ConvertedImage } from '../convert/convert-image.ts';
import { RegistryClient } from '../registry/client.ts';
import { repositoryRef } from '../sources/registry-source.ts';
import type { ImageSinks } from '../sources/sinks.ts';
import { CredentialStore } from '../registry/credentials.ts';
import { DuccError, errorMessage } from '../util/errors.ts';
import { secretFromEnv } from '../util/secrets.ts';
import { formatOutputImage, parseImageReference, type ImageReference } from '../wishlist/image-reference.ts';
import type { Wishlist } from '../wishlist/wishlist.ts';
import { buildThinImage, pushThinImage, THIN_MANIFEST_MEDIA_TYPE } from './thin-image.ts';

/**
 * Thin images of a wish list: pushed as its `user` with DUCC_OUTPUT_REGISTRY_PASS(_FILE), and looked up
 * (one manifest HEAD) to tell whether an interrupted push must be redone. Shared by the CLI and the bot.
 * When `output_format` names an OCI layout (`oci:DIR:TAG`) or a dogestry remote (`dogestry://REMOTE/...`),
 * the thin image is written there through `sinks` instead (no registry account needed).
 *
 * What a push to a registry needs is checked here, when the run starts, not after an image was
 * downloaded and published: a BOT_ERR_THIN (or BOT_ERR_CONFIG for an unreadable password file) before any
 * download.
 */
export function thinPusher(
  wishlist: Pick<Wishlist, 'user' | 'outputFormat' | 'cvmfsRepo' | 'wishes'>,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  sinks?: ImageSinks,
) {
  // Whether some thin image of the list goes to a registry (the others go to layouts or remotes).
  const toRegistry = wishlist.wishes.some((wish) => {
    try {
      return parseImageReference(formatOutputImage(wishlist.outputFormat, wish.image)).source === undefined;
    } catch {
      return true; // reported when its push is tried
    }
  });
  const password = toRegistry ? secretFromEnv(env, 'DUCC_OUTPUT_REGISTRY_PASS') : undefined;
  if (toRegistry) {
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
  }
  const outputOf = (image: ImageReference): { name: string; output: ImageReference } => {
    const name = formatOutputImage(wishlist.outputFormat, image);
    try {
      return { name, output: parseImageReference(name) };
    } catch (error) {
      throw new DuccError(
        'BOT_ERR_THIN',
        `thin image name '${name}' (from output_format) is not usable: ${errorMessage(error)}; set output_format or pass --skip-thin-image`,
        {
          cause: error,
        },
      );
    }
  };
  const sinkFor = (output: ImageReference): ImageSinks | undefined => {
    if (output.source === undefined) return undefined;
    if (sinks === undefined) throw new DuccError('BOT_ERR_THIN', `thin images cannot be written to ${output.scheme} outputs here`);
    return sinks;
  };
  const clientFor = (output: ImageReference) => {
    if (!wishlist.user || password === undefined) {
      throw new DuccError(
        'BOT_ERR_THIN',
        "pushing the thin image needs the wish list's 'user' and DUCC_OUTPUT_REGISTRY_PASS or DUCC_OUTPUT_REGISTRY_PASS_FILE (or pass --skip-thin-image)",
      );
    }
    const credentials = new CredentialStore();
    credentials.set(output.registry, { username: wishlist.user, password });
    return new RegistryClient({ credentials, logger });
  };
  return {
    pushThinImage: async (converted: ConvertedImage) => {
      const { name, output } = outputOf(converted.image);
      const built = await buildThinImage({
        image: converted.image,
        cvmfsRepo: wishlist.cvmfsRepo!,
        layerDigests: converted.manifest.layers.map((layer) => layer.digest),
        config: converted.config,
      });
      const sink = sinkFor(output);
      if (sink === undefined) return pushThinImage(clientFor(output), name, built);
      if (output.tag === undefined) throw new DuccError('BOT_ERR_THIN', `thin image name '${name}' has no tag to write`);
      const digest = await sink.writeImage(output, { manifest: built.manifest, manifestMediaType: THIN_MANIFEST_MEDIA_TYPE, blobs: built.blobs });
      return { name, digest };
    },
    thinImageExists: async (image: ImageReference) => {
      const { output } = outputOf(image);
      if (output.tag === undefined) return false;
      const sink = sinkFor(output);
      if (sink !== undefined) return sink.hasImage(output);
      return (await clientFor(output).headManifest(repositoryRef(output), output.tag)) !== undefined;
    },
  };
}
