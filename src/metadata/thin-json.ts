/**
 * The thin-image descriptor `thin.json` (ducc.md §4.1), byte for byte as DUCC builds it:
 * `ducc/docker-api/util.go` `MakeThinImage` + `ducc/lib/conversion.go` `CreateThinImage`, i.e.
 * `json.MarshalIndent(ThinImage{Version: "1.0", Origin, Layers}, "", "  ")` — two-space indent, HTML
 * escaping on, and NO trailing newline (`MarshalIndent` adds none and the bytes go into the tar as is).
 *
 *     type ThinImageLayer struct { Digest string `json:"digest"`; Url string `json:"url,omitempty"` }
 *     type ThinImage struct {
 *         Version string `json:"version"`; MinVersion string `json:"min_version,omitempty"`
 *         Origin string `json:"origin,omitempty"`; Layers []ThinImageLayer `json:"layers"`
 *         Comment string `json:"comment,omitempty"` }
 *
 * `min_version` and `comment` are never set. `origin` is omitted when empty. `layers` is built with
 * `make([]ThinImageLayer, len(m.Layers))`, so it is `[]` (never `null`) for an image without layers.
 */
import { DuccError } from '../util/errors.ts';
import { assertSafeRelativePath, digestHex } from '../layout/paths.ts';
import { goJsonMarshalIndent, type GoJsonValue } from './ducc-manifest.ts';

/** The thin descriptor version DUCC writes. */
export const THIN_IMAGE_VERSION = '1.0';

/**
 * @param origin the expanded input image, `WholeName()` = `scheme://registry/repo[:tag][@digest]`
 *   (omitted from the file when empty).
 * @param layers the manifest layers in manifest order, base first, foreign layers included.
 * @param cvmfsRepo the repository name, possibly with a sub-directory (`unpacked.cern.ch/images`); each
 *   URL is `cvmfs://` + the absolute `layerfs` path without its leading `/cvmfs/`.
 */
export function formatThinJson(origin: string, layers: readonly { digest: string }[], cvmfsRepo: string): Buffer {
  const repo = normaliseRepo(cvmfsRepo);
  const thinLayers: GoJsonValue[] = layers.map((layer) => {
    const hex = digestHex(layer.digest);
    return new Map<string, GoJsonValue>([
      ['digest', hex],
      ['url', `cvmfs://${repo}/.layers/${hex.slice(0, 2)}/${hex}/layerfs`],
    ]);
  });
  const thin = new Map<string, GoJsonValue>([['version', THIN_IMAGE_VERSION]]);
  if (origin !== '') thin.set('origin', origin);
  thin.set('layers', thinLayers);
  return Buffer.from(goJsonMarshalIndent(thin, '', '  '), 'utf8');
}

/**
 * Go builds the location with `filepath.Join("/", "cvmfs", repo, …)`, which drops a trailing slash of
 * the repository (`unpacked.cern.ch/images/`); anything that would need more cleaning is refused.
 */
function normaliseRepo(cvmfsRepo: string): string {
  const repo = cvmfsRepo.replace(/\/+$/, '');
  try {
    assertSafeRelativePath(repo);
  } catch (error) {
    throw new DuccError('BOT_ERR_THIN', `unusable CernVM-FS repository name ${JSON.stringify(cvmfsRepo)}`, { cause: error });
  }
  return repo;
}
