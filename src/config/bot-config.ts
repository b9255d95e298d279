import type { ForgeKind } from '../forge/events.ts';
import type { S3HookRemote } from '../forge/parse-s3.ts';
import type { PublisherConfig } from './publisher-config.ts';
import type { DogestryRemote } from '../sources/dogestry-store.ts';
import type { StateConfig } from './state-config.ts';

/** One wish-list repository the bot watches. */
export interface WishlistRepoConfig {
  /** Short name used in state, logs and URLs, e.g. `unpacked`. */
  name: string;
  forge: ForgeKind;
  /** API base URL: `https://api.github.com`, `https://gitlab.cern.ch` (GitHub Enterprise / self-hosted GitLab too). */
  apiUrl: string;
  /** GitHub `owner/name`, GitLab `group/project`. */
  project: string;
  /** What `git clone` uses (https, ssh or file://); credentials, if any, come from git's own config. */
  cloneUrl: string;
  /** The branch whose pushes are published, e.g. `main`. */
  branch: string;
  /** Wish-list files in the repository, relative to its root. */
  paths: string[];
  /** Environment variable holding the forge API token (a `<NAME>_FILE` variable works too). */
  tokenEnv: string;
  /** Forge account of the bot: its own comments are ignored. */
  botUser?: string;
  /** Whether `/reconvert` is accepted on merge requests from forks (default false). */
  allowForks: boolean;
}

/**
 * Registry webhook endpoints: `POST /hooks/registry/<kind>/<name>[/<secret>]`. Kind `s3` takes the S3 event
 * notifications of a dogestry remote's bucket (`remote`).
 */
export interface RegistryHookConfig {
  name: string;
  kind: 'distribution' | 'harbor' | 'dockerhub' | 'quay' | 's3';
  /** Kind s3: the dogestry remote (an S3 one of dogestryRemotes) whose bucket sends the notifications. */
  remote?: S3HookRemote;
  /**
   * Environment variable with the shared secret: distribution and Harbor send it in the Authorization
   * header (static header in their config); Docker Hub and Quay sign nothing, so it is part of the URL.
   */
  secretEnv: string;
}

export interface BotConfig {
  /** Where `ducc serve` listens, e.g. `127.0.0.1`, port 8080. */
  listen: { host: string; port: number };
  /** Public base URL of the bot (links in statuses and reports), e.g. `https://ducc.example.org`. */
  publicUrl?: string;
  /** SQLite database file (the `sqlite` state). */
  statePath: string;
  /** Where the state lives: SQLite at statePath (one process; also when absent), or PostgreSQL (several replicas). */
  state?: StateConfig;
  /** Where wish-list repositories are cloned. */
  cacheDir: string;
  publisher: PublisherConfig;
  /** Dogestry remotes that wish lists name as `dogestry://NAME/...`. */
  dogestryRemotes?: DogestryRemote[];
  wishlists: WishlistRepoConfig[];
  registryHooks: RegistryHookConfig[];
  /** GitHub webhook secret variable (X-Hub-Signature-256); also `<NAME>_PREVIOUS` during rotation. */
  githubSecretEnv: string;
  /** GitLab webhook token variable (X-Gitlab-Token). */
  gitlabTokenEnv: string;
  /** Minutes between full reconciles (0 disables). Default 15. */
  reconcileMinutes: number;
  /** Seconds a registry push waits for more pushes of the same tag before it is handled. Default 10. */
  registryDebounceSeconds: number;
  /** Most jobs waiting in the queue; webhooks beyond it are answered 503. Default 1000. */
  maxQueuedJobs: number;
  /** Commit status context prefix. Default `ducc-gitops`. */
  statusContext: string;
  /** Conversion switches applied by the bot. */
  convert: { skipThinImage: boolean; multiArch: boolean; platform?: string };
  /** Garbage collection of the repositories the bot publishes into (absent: none). */
  gc?: GcScheduleConfig;
}

/** `gc:` of the bot config: a `ducc gc` of every repository the bot publishes into, every so often. */
export interface GcScheduleConfig {
  /** Hours between two collections of each repository; 0 (the default) turns them off. */
  intervalHours: number;
  /** As `ducc gc --grace-period`: days, or a duration such as 12h (default 7d). */
  gracePeriod: string;
  /** cvmfs publisher: then `cvmfs_server gc -f` (as `--cvmfs-gc`). */
  cvmfsGc: boolean;
}
