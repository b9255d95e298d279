/**
 * What an operator can tune about the registry client, read from the environment in one place.
 *
 * `ducc convert`, `ducc loop` and `ducc serve` (and the systemd units' environment files) read the same
 * variables, so they are environment variables rather than flags. They are read once, at the edge, by
 * registrySettingsFromEnv, and the resulting object is passed down: nothing below RegistryClient's
 * constructor looks at process.env. (Pull credentials and pull-through proxies, DUCC_AUTH_REGISTRIES and
 * DUCC_<NAME>_*, are read by CredentialStore.fromEnvironment, also at the edge.) docs/security.md lists
 * the limits with the same defaults.
 */
import { countFromEnv, durationFromEnv, integerFromEnv } from './limits.ts';

export interface RegistrySettings {
  /**
   * DUCC_REGISTRY_RETRIES, default 4: retries after the first attempt of an idempotent request (GET,
   * HEAD; after 5xx, 429, 408, resets and timeouts), and resumptions of one blob download. 0 turns both
   * off. Uploads (POST, PUT) are never retried.
   */
  maxRetries: number;
  /**
   * DUCC_REGISTRY_TIMEOUT, in seconds (fractions allowed), default 60; held here in milliseconds: the
   * longest wait for a response's headers, and between two chunks of its body. A stalled request fails
   * (and is retried) instead of hanging.
   */
  timeoutMs: number;
  /** DUCC_REGISTRY_MAX_CONCURRENT, default 6: simultaneous requests per registry host; more wait for a slot. */
  maxConcurrentPerRegistry: number;
  /**
   * DUCC_LIMIT_IMAGE_LAYERS, default 1000: layers in one image manifest (Docker and overlayfs stop at
   * 127; OCI sets no limit). A longer manifest fails before any blob is asked for.
   */
  maxImageLayers: number;
  /** DUCC_LIMIT_INDEX_ENTRIES, default 1000: entries (platforms and attestations) in one image index. */
  maxIndexEntries: number;
}

/** The variable behind each setting, for messages that tell the operator which one to change. */
export const REGISTRY_SETTING_VARIABLES = {
  maxRetries: 'DUCC_REGISTRY_RETRIES',
  timeoutMs: 'DUCC_REGISTRY_TIMEOUT',
  maxConcurrentPerRegistry: 'DUCC_REGISTRY_MAX_CONCURRENT',
  maxImageLayers: 'DUCC_LIMIT_IMAGE_LAYERS',
  maxIndexEntries: 'DUCC_LIMIT_INDEX_ENTRIES',
} as const satisfies Record<keyof RegistrySettings, string>;

/** Each setting when its variable is unset or empty: far above what real images and registries need. */
export const DEFAULT_REGISTRY_SETTINGS: Readonly<RegistrySettings> = Object.freeze({
  maxRetries: 4,
  timeoutMs: 60_000,
  maxConcurrentPerRegistry: 6,
  maxImageLayers: 1000,
  maxIndexEntries: 1000,
});

/**
 * The settings from `env` (pass process.env at the edge, or a plain object in tests). A value that is
 * not a number of the right kind is a BOT_ERR_CONFIG naming its variable, raised here rather than at the
 * first request.
 */
export function registrySettingsFromEnv(env: NodeJS.ProcessEnv): RegistrySettings {
  const names = REGISTRY_SETTING_VARIABLES;
  const defaults = DEFAULT_REGISTRY_SETTINGS;
  return {
    maxRetries: countFromEnv(names.maxRetries, defaults.maxRetries, env),
    timeoutMs: durationFromEnv(names.timeoutMs, defaults.timeoutMs, env),
    maxConcurrentPerRegistry: integerFromEnv(names.maxConcurrentPerRegistry, defaults.maxConcurrentPerRegistry, env),
    maxImageLayers: integerFromEnv(names.maxImageLayers, defaults.maxImageLayers, env),
    maxIndexEntries: integerFromEnv(names.maxIndexEntries, defaults.maxIndexEntries, env),
  };
}
