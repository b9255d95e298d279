import { DuccError } from '../util/errors.ts';
import type { Descriptor, Platform } from './types.ts';

export const DEFAULT_PLATFORM: Platform = Object.freeze({ os: 'linux', architecture: 'amd64' });

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i686: '386',
  i386: '386',
};

const PART_PATTERN = /^[a-z0-9_.-]+$/;

/** Lowercases and maps common aliases (x86_64 → amd64, aarch64 → arm64). */
export function normalizeArchitecture(architecture: string): string {
  const lower = architecture.toLowerCase();
  return ARCH_ALIASES[lower] ?? lower;
}

/**
 * Normalised form of a platform: lowercase, architecture aliases resolved, and the variant dropped
 * where it is the architecture's only/default one (arm64 v8, amd64 v1), so that equal platforms compare equal.
 */
export function normalizePlatform(platform: Platform): Platform {
  const os = platform.os.toLowerCase();
  const architecture = normalizeArchitecture(platform.architecture);
  let variant = platform.variant?.toLowerCase() || undefined;
  if (architecture === 'arm64' && variant === 'v8') variant = undefined;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/**
 * Parses `os/arch[/variant]`; a single word is an architecture on linux ('arm64' → linux/arm64).
 * Throws BOT_ERR_PLATFORM for anything else.
 */
export function parsePlatform(value: string): Platform {
  const parts = value.trim().split('/');
  const bad = () => new DuccError('BOT_ERR_PLATFORM', `invalid platform ${JSON.stringify(value)}: expected os/architecture[/variant], e.g. linux/arm64/v8`);
  if (parts.length < 1 || parts.length > 3 || parts.some((p) => !PART_PATTERN.test(p.toLowerCase()))) throw bad();
  if (parts.length === 1) return { os: 'linux', architecture: normalizeArchitecture(parts[0]!) };
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  const result: Platform = { os: os.toLowerCase(), architecture: normalizeArchitecture(architecture) };
  if (variant !== undefined) result.variant = variant.toLowerCase();
  return result;
}

/** `os/arch[/variant]`. */
export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter((p) => p !== undefined && p !== '').join('/');
}

/**
 * True when an available platform satisfies the wanted one: same os and architecture, and — only if the
 * wanted platform names a variant — the same variant (after normalisation, so arm64 ≡ arm64/v8).
 */
export function platformMatches(available: Platform, wanted: Platform): boolean {
  const a = normalizePlatform(available);
  const w = normalizePlatform(wanted);
  if (a.os !== w.os || a.architecture !== w.architecture) return false;
  if (wanted.variant === undefined || wanted.variant === '') return true;
  return a.variant === w.variant;
}

/**
 * Index entries that describe a runnable image for some platform: entries with architecture 'unknown'
 * or the BuildKit attestation annotation are dropped.
 */
export function isIgnoredIndexEntry(entry: Descriptor): boolean {
  if (entry.platform?.architecture === 'unknown') return true;
  if (entry.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return false;
}

/**
 * Picks the index entry for `wanted` (entries must already have their platform). An exact variant match
 * wins over a variant-less match ('linux/arm' wanted with entries arm/v6 and arm/v7: the first listed).
 */
export function selectPlatformEntry(entries: readonly Descriptor[], wanted: Platform): Descriptor | undefined {
  const candidates = entries.filter((e) => !isIgnoredIndexEntry(e) && e.platform !== undefined && platformMatches(e.platform, wanted));
  if (candidates.length <= 1) return candidates[0];
  const w = normalizePlatform(wanted);
  return candidates.find((e) => normalizePlatform(e.platform!).variant === w.variant) ?? candidates[0];
}
