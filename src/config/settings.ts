/**
 * Operator-tunable settings that come from the environment (`DUCC_*` variables, e.g. from a systemd
 * unit's environment file), read once at the edge (the command line) and passed down, as probot reads
 * its environment in one place. The configuration file is load-bot-config.ts / publisher-config.ts;
 * secrets are read where they are used, by the variable names the configuration gives.
 */
import { integerFromEnv } from '../registry/limits.ts';

/** The webhook listener's settings (src/http). */
export interface HttpSettings {
  /**
   * Body bytes all webhook requests together may hold in memory (DUCC_WEBHOOK_BODIES_MAX_BYTES, a k/m/g
   * suffix allowed; default 64 MiB). A GitHub body must be read whole before its signature can be
   * checked, so without this many senders of well-formed but wrongly signed 25 MB bodies could make the
   * server hold their sum. Beyond it a request gets 503 with Retry-After.
   */
  webhookBodiesMaxBytes: number;
}

export interface Settings {
  http: HttpSettings;
}

export const WEBHOOK_BODIES_MAX_BYTES_VARIABLE = 'DUCC_WEBHOOK_BODIES_MAX_BYTES';

/** Real deliveries are a few kB; the default lets two bodies of the maximum size (25 MB) in at once. */
export const DEFAULT_SETTINGS: Settings = {
  http: { webhookBodiesMaxBytes: 64 * 1024 * 1024 },
};

/** Reads every setting from `env`; a malformed value is a BOT_ERR_CONFIG naming its variable. */
export function readSettings(env: NodeJS.ProcessEnv): Settings {
  return {
    http: {
      webhookBodiesMaxBytes: integerFromEnv(WEBHOOK_BODIES_MAX_BYTES_VARIABLE, DEFAULT_SETTINGS.http.webhookBodiesMaxBytes, env),
    },
  };
}
