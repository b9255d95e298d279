/**
 * On-disk path rules of a DUCC repository (ducc.md §3.1, §3.3, §3.8). Every path here is relative to
 * the repository root (`/cvmfs/<repo>/`), POSIX-style, without a leading slash.
 *
 * DUCC (Go) builds these paths with `filepath.Join`, which cleans them; we refuse anything that would
 * need cleaning (empty, `.` or `..` components, absolute paths) instead of silently normalising it,
 * so a hostile image name can never escape the repository.
 */
import { DuccError } from '../util/errors.ts';

const SHA256_DIGEST = /^sha256:([a-f0-9]{64})$/;

/** `.layers` (Go: `constants.SubDirInsideRepo`). */
export const LAYERS_DIR = '.layers';
/** `.flat`: one directory per image config digest. */
export const FLAT_DIR = '.flat';
/** `.metadata`: DUCC manifests, per simple name. */
export const METADATA_DIR = '.metadata';
/** `.multiarch` (2026 devel): per-platform public symlinks. */
export const MULTIARCH_DIR = '.multiarch';
/** `.metadata/remove-schedule.json` (§3.9). */
export const REMOVE_SCHEDULE_PATH = '.metadata/remove-schedule.json';

/** An image name split the way DUCC's `Image` struct holds it. */
export interface ImageLocation {
  registry: string;
  repository: string;
  tag?: string | undefined;
  digest?: string | undefined;
}

/**
 * The hex part of a `sha256:<64 lowercase hex>` digest. Throws `BOT_ERR_REFERENCE` for anything
 * else (DUCC itself only ever does `strings.Split(d, ":")[1]`, so other algorithms never worked).
 */
export function digestHex(digest: string): string {
  const match = typeof digest === 'string' ? SHA256_DIGEST.exec(digest) : null;
  if (!match) throw new DuccError('BOT_ERR_REFERENCE', `not a sha256 digest: ${describe(digest)}`);
  return match[1] as string;
}

/** `.layers/<hex[0:2]>/<hex>` for a compressed layer digest (Go: `cvmfs.LayerPath`). */
export function layerDir(digest: string): string {
  const hex = digestHex(digest);
  return `${LAYERS_DIR}/${hex.slice(0, 2)}/${hex}`;
}

/** `.layers/<hex[0:2]>/<hex>/layerfs` (Go: `cvmfs.LayerRootfsPath`). */
export function layerfsDir(digest: string): string {
  return `${layerDir(digest)}/layerfs`;
}

/** `.layers/<hex[0:2]>/<hex>/.metadata` (Go: `cvmfs.LayerMetadataPath`), home of layers.json and origin.json. */
export function layerMetadataDir(digest: string): string {
  return `${layerDir(digest)}/.metadata`;
}

/** `.flat/<hex[0:2]>/<hex>` for an image config digest (Go: `Manifest.GetSingularityPath`). */
export function flatDir(configDigest: string): string {
  const hex = digestHex(configDigest);
  return `${FLAT_DIR}/${hex.slice(0, 2)}/${hex}`;
}

/**
 * The directories above a layer directory (`.layers/<xx>/<d>`) or a flat tree (`.flat/<xx>/<d>`) that
 * DUCC makes nested catalogs: `.layers` and `.layers/<xx>`, or `.flat` (not `.flat/<xx>`). The layer's
 * `layerfs` and the flat tree itself are catalogs too; the publishers add those.
 */
export function catalogParents(dir: string): string[] {
  const [top, fanout] = dir.split('/');
  if (top === LAYERS_DIR && fanout !== undefined) return [LAYERS_DIR, `${LAYERS_DIR}/${fanout}`];
  if (top === FLAT_DIR) return [FLAT_DIR];
  return [];
}

/**
 * Public path `<registry>/<repository>:<tag>`, or `<registry>/<repository>:<digest>` when there is no
 * tag (Go: `GetPublicSymlinkPath` = `filepath.Join(Registry, Repository + ":" + GetSimpleReference())`;
 * the tag wins when both are present).
 */
export function publicPath(image: ImageLocation): string {
  const { registry, repository } = checkedLocation(image);
  const reference = simpleReference(image);
  return checkedResult(`${registry}/${repository}:${reference}`);
}

/**
 * `.metadata/<registry>/<repository>[:<tag>]` (Go: `filepath.Join(".metadata", GetSimpleName())`).
 * There is never a digest in the name: a digest-only image uses `.metadata/<registry>/<repository>`.
 */
export function metadataDir(image: ImageLocation): string {
  return checkedResult(`${METADATA_DIR}/${simpleName(image)}`);
}

/** `.metadata/<registry>/<repository>[:<tag>]/manifest.json`. */
export function metadataManifestPath(image: ImageLocation): string {
  return `${metadataDir(image)}/manifest.json`;
}

/** The platform directory name `<arch>[:<variant>]`, e.g. `amd64`, `arm64:v8` (§3.8). */
export function platformDirName(platform: { architecture: string; variant?: string | undefined }): string {
  const name = platform.variant ? `${platform.architecture}:${platform.variant}` : platform.architecture;
  assertSingleComponent(name, 'platform directory');
  return name;
}

/** `.multiarch/<platformDir>/<registry>/<repository>:<tag|digest>` (2026 devel, §3.8). */
export function multiarchPublicPath(platformDir: string, image: ImageLocation): string {
  assertSingleComponent(platformDir, 'platform directory');
  return checkedResult(`${MULTIARCH_DIR}/${platformDir}/${publicPath(image)}`);
}

/** `.metadata/.multiarch/<platformDir>/<registry>/<repository>[:<tag>]` (2026 devel, §3.8; no digest in the name). */
export function multiarchMetadataDir(platformDir: string, image: ImageLocation): string {
  assertSingleComponent(platformDir, 'platform directory');
  return checkedResult(`${METADATA_DIR}/${MULTIARCH_DIR}/${platformDir}/${simpleName(image)}`);
}

/**
 * The verbatim target of the 2026-devel CVMFS variant symlink placed at `publicPath(image)`:
 * `"../" × depth + ".multiarch/$(CVMFS_ARCH:-<defaultArch>)/" + publicPath` (Go: `GetVariantSymlinkTarget`).
 */
export function multiarchVariantSymlinkTarget(image: ImageLocation, defaultArch: string): string {
  assertSingleComponent(defaultArch, 'default architecture');
  const pub = publicPath(image);
  const depth = pub.split('/').length - 1;
  return `${'../'.repeat(depth)}${MULTIARCH_DIR}/$(CVMFS_ARCH:-${defaultArch})/${pub}`;
}

/**
 * The relative target DUCC writes for a symlink at `linkPath` pointing to `targetPath` (both
 * repository-relative). Go (`CreateSymlinkIntoCVMFS`): `filepath.Rel(link, target)` with its first
 * component dropped (CVM-1817). When the two paths share no leading component — always the case for
 * public names → `.flat/…` — this is `"../" × (components of the link's parent directory) + target`,
 * e.g. `registry.hub.docker.com/library/ubuntu:latest` → `../../.flat/ab/<hex>`. When they do share
 * leading components (podman store links), Go's `Rel` shortens the path and so do we, byte for byte.
 */
export function relativeSymlinkTarget(linkPath: string, targetPath: string): string {
  assertSafeRelativePath(linkPath);
  assertSafeRelativePath(targetPath);
  const link = linkPath.split('/');
  const target = targetPath.split('/');
  let common = 0;
  while (common < link.length && common < target.length && link[common] === target[common]) common++;
  if (common === link.length) {
    // Rel would start inside the link itself (target at or below the link): DUCC would write a broken link.
    throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `symlink ${describe(linkPath)} cannot point to ${describe(targetPath)} at or below itself`);
  }
  const ups = link.length - common - 1;
  const result = [...Array<string>(ups).fill('..'), ...target.slice(common)].join('/');
  if (result === '') {
    // The target is the link's own parent directory: Go ends up with an empty target and os.Symlink fails.
    throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `symlink ${describe(linkPath)} cannot point to its own directory ${describe(targetPath)}`);
  }
  return result;
}

/**
 * Throws `BOT_ERR_UNSAFE_ENTRY` unless `p` is a canonical repository-relative POSIX path: not empty,
 * not absolute, no empty, `.` or `..` components, no NUL byte.
 */
export function assertSafeRelativePath(p: string): void {
  if (typeof p !== 'string' || p === '') throw new DuccError('BOT_ERR_UNSAFE_ENTRY', 'empty path');
  if (p.includes('\0')) throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `path contains NUL: ${describe(p)}`);
  if (p.startsWith('/')) throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `absolute path: ${describe(p)}`);
  for (const component of p.split('/')) {
    if (component === '' || component === '.' || component === '..') {
      throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `path ${describe(p)} has a '${component}' component`);
    }
  }
}

/** Go `GetSimpleName`: `<registry>/<repository>` plus `:<tag>` when there is a tag. */
function simpleName(image: ImageLocation): string {
  const { registry, repository } = checkedLocation(image);
  const tag = image.tag;
  if (tag === undefined || tag === '') return `${registry}/${repository}`;
  assertTag(tag);
  return `${registry}/${repository}:${tag}`;
}

/** Go `GetSimpleReference`: the tag if any, else the digest; Go panics when both are missing. */
function simpleReference(image: ImageLocation): string {
  if (image.tag !== undefined && image.tag !== '') {
    assertTag(image.tag);
    return image.tag;
  }
  if (image.digest !== undefined && image.digest !== '') {
    digestHex(image.digest);
    return image.digest;
  }
  throw new DuccError('BOT_ERR_REFERENCE', `image ${describe(`${image.registry}/${image.repository}`)} has neither a tag nor a digest`);
}

function checkedLocation(image: ImageLocation): { registry: string; repository: string } {
  const { registry, repository } = image;
  try {
    assertSingleComponent(registry, 'registry');
    assertSafeRelativePath(repository);
  } catch (error) {
    throw new DuccError('BOT_ERR_REFERENCE', `unusable image location: ${(error as Error).message}`, { cause: error });
  }
  return { registry, repository };
}

function assertTag(tag: string): void {
  if (tag.includes('/') || tag.includes('\0')) throw new DuccError('BOT_ERR_REFERENCE', `unusable tag ${describe(tag)}`);
}

function assertSingleComponent(name: string, what: string): void {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new DuccError('BOT_ERR_UNSAFE_ENTRY', `unusable ${what}: ${describe(name)}`);
  }
}

function checkedResult(p: string): string {
  assertSafeRelativePath(p);
  return p;
}

function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}
