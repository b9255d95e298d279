/**
 * Where a dogestry remote keeps its files: a directory (`file:///srv/dogestry`, dogestry's "local remote")
 * or an S3 bucket and prefix (its "s3 remote"). Both hold dogestry's portable repository format: keys
 * `repositories/<repository>/<tag>` (an image id) and `images/<id>/{json,layer.tar,VERSION}`.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { DuccError, errorMessage } from '../util/errors.ts';
import { secretFromEnv } from '../util/secrets.ts';
import type { RegistrySettings } from '../registry/settings.ts';

/** A dogestry remote from the configuration's `dogestryRemotes`. */
export type DogestryRemote =
  | { name: string; kind: 'directory'; path: string }
  | { name: string; kind: 's3'; bucket: string; prefix: string; region: string; endpoint?: string; forcePathStyle: boolean };

export interface DogestryStore {
  readonly description: string;
  /** An object's bytes, undefined when it does not exist; refused (before reading) when larger than `maxBytes`. */
  get(key: string, maxBytes: number, what: string): Promise<Buffer | undefined>;
  /** An object's bytes as a stream. */
  stream(key: string, what: string): Promise<Readable>;
  /** Keys below `prefix` (which ends in `/`), relative to the remote. */
  list(prefix: string): Promise<string[]>;
  put(key: string, body: Buffer): Promise<void>;
}

/** `file:///srv/dogestry` or `s3://bucket/prefix` of a remote, for messages. */
export function describeRemote(remote: DogestryRemote): string {
  return remote.kind === 'directory' ? `file://${remote.path}` : `s3://${remote.bucket}/${remote.prefix}`;
}

export class DirectoryStore implements DogestryStore {
  readonly #root: string;
  readonly description: string;

  constructor(root: string) {
    this.#root = root;
    this.description = `file://${root}`;
  }

  async get(key: string, maxBytes: number, what: string): Promise<Buffer | undefined> {
    let handle;
    try {
      handle = await open(join(this.#root, key));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw new DuccError('BOT_ERR_ARCHIVE', `cannot read ${what}: ${code ?? errorMessage(error)}`, { cause: error });
    }
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) throw new DuccError('BOT_ERR_LIMIT', `${what} is ${size} bytes, more than the ${maxBytes} allowed`);
      const buffer = Buffer.alloc(size);
      const { bytesRead } = await handle.read(buffer, 0, size, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async stream(key: string, what: string): Promise<Readable> {
    const handle = await open(join(this.#root, key)).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      throw new DuccError(code === 'ENOENT' ? 'BOT_ERR_REGISTRY_NOT_FOUND' : 'BOT_ERR_ARCHIVE', `cannot read ${what}: ${code ?? errorMessage(error)}`, {
        cause: error,
      });
    });
    return createReadStream('', { fd: handle, highWaterMark: 1024 * 1024 });
  }

  async list(prefix: string): Promise<string[]> {
    const entries = await readdir(join(this.#root, prefix), { recursive: true, withFileTypes: true }).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new DuccError('BOT_ERR_ARCHIVE', `cannot list ${this.description}/${prefix}: ${errorMessage(error)}`, { cause: error });
    });
    const base = join(this.#root, prefix);
    return entries.filter((entry) => entry.isFile()).map((entry) => prefix + relative(base, join(entry.parentPath, entry.name)));
  }

  async put(key: string, body: Buffer): Promise<void> {
    const path = join(this.#root, key);
    const temporary = `${path}.${randomUUID()}.tmp`;
    await mkdir(join(path, '..'), { recursive: true });
    try {
      await writeFile(temporary, body);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw new DuccError('BOT_ERR_PUBLISH', `cannot write ${this.description}/${key}: ${errorMessage(error)}`, { cause: error });
    }
  }
}

/**
 * An S3 bucket through @aws-sdk/client-s3. Credentials come only from the environment: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, each also as <NAME>_FILE (never from the configuration, and
 * not from the SDK's other providers: ~/.aws files, instance metadata). Timeout and retries follow
 * DUCC_REGISTRY_TIMEOUT and DUCC_REGISTRY_RETRIES.
 */
export class S3Store implements DogestryStore {
  readonly #remote: DogestryRemote & { kind: 's3' };
  readonly #env: NodeJS.ProcessEnv;
  readonly #settings: Pick<RegistrySettings, 'maxRetries' | 'timeoutMs'>;
  #client: import('@aws-sdk/client-s3').S3Client | undefined;
  #sdk: typeof import('@aws-sdk/client-s3') | undefined;
  readonly description: string;

  constructor(remote: DogestryRemote & { kind: 's3' }, env: NodeJS.ProcessEnv, settings: Pick<RegistrySettings, 'maxRetries' | 'timeoutMs'>) {
    this.#remote = remote;
    this.#env = env;
    this.#settings = settings;
    this.description = describeRemote(remote);
  }

  async get(key: string, maxBytes: number, what: string): Promise<Buffer | undefined> {
    const { client, sdk } = await this.#connect();
    let response;
    try {
      response = await client.send(new sdk.GetObjectCommand({ Bucket: this.#remote.bucket, Key: this.#key(key) }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw this.#error(error, `reading ${what}`);
    }
    const body = response.Body as Readable | undefined;
    if (response.ContentLength !== undefined && response.ContentLength > maxBytes) {
      body?.destroy();
      throw new DuccError('BOT_ERR_LIMIT', `${what} is ${response.ContentLength} bytes, more than the ${maxBytes} allowed`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of (body ?? []) as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > maxBytes) {
          body?.destroy();
          throw new DuccError('BOT_ERR_LIMIT', `${what} is more than the ${maxBytes} bytes allowed`);
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof DuccError) throw error;
      throw this.#error(error, `reading ${what}`);
    }
    return Buffer.concat(chunks);
  }

  async stream(key: string, what: string): Promise<Readable> {
    const { client, sdk } = await this.#connect();
    try {
      const response = await client.send(new sdk.GetObjectCommand({ Bucket: this.#remote.bucket, Key: this.#key(key) }));
      return response.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) throw new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', `${what} does not exist`, { cause: error });
      throw this.#error(error, `reading ${what}`);
    }
  }

  async list(prefix: string): Promise<string[]> {
    const { client, sdk } = await this.#connect();
    const keys: string[] = [];
    let token: string | undefined;
    const full = this.#key(prefix);
    do {
      let page;
      try {
        page = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.#remote.bucket, Prefix: full, ...(token ? { ContinuationToken: token } : {}) }));
      } catch (error) {
        throw this.#error(error, `listing ${this.description}/${prefix}`);
      }
      for (const object of page.Contents ?? []) if (object.Key?.startsWith(full)) keys.push(prefix + object.Key.slice(full.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys;
  }

  async put(key: string, body: Buffer): Promise<void> {
    const { client, sdk } = await this.#connect();
    try {
      await client.send(new sdk.PutObjectCommand({ Bucket: this.#remote.bucket, Key: this.#key(key), Body: body, ContentLength: body.length }));
    } catch (error) {
      throw this.#error(error, `writing ${this.description}/${key}`);
    }
  }

  #key(key: string): string {
    return this.#remote.prefix + key;
  }

  async #connect(): Promise<{ client: import('@aws-sdk/client-s3').S3Client; sdk: typeof import('@aws-sdk/client-s3') }> {
    if (this.#client === undefined || this.#sdk === undefined) {
      // An empty variable counts as unset, so that its _FILE variant is read.
      const env = Object.fromEntries(Object.entries(this.#env).filter(([, value]) => value !== ''));
      const accessKeyId = secretFromEnv(env, 'AWS_ACCESS_KEY_ID');
      const secretAccessKey = secretFromEnv(env, 'AWS_SECRET_ACCESS_KEY');
      const sessionToken = secretFromEnv(env, 'AWS_SESSION_TOKEN');
      if (!accessKeyId || !secretAccessKey) {
        throw new DuccError(
          'BOT_ERR_CONFIG',
          `dogestry remote '${this.#remote.name}' (${this.description}) needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE) in the environment`,
        );
      }
      // Loaded on first use: conversions without an S3 remote never load the SDK. The SDK is CommonJS: in the
      // bundle (dist/bundle) its exports arrive as the namespace's `default`.
      const loaded = (await import('@aws-sdk/client-s3')) as typeof import('@aws-sdk/client-s3') & { default?: typeof import('@aws-sdk/client-s3') };
      this.#sdk = typeof loaded.S3Client === 'function' ? loaded : loaded.default!;
      this.#client = new this.#sdk.S3Client({
        region: this.#remote.region,
        ...(this.#remote.endpoint === undefined ? {} : { endpoint: this.#remote.endpoint }),
        forcePathStyle: this.#remote.forcePathStyle,
        credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
        maxAttempts: this.#settings.maxRetries + 1,
        requestHandler: { requestTimeout: this.#settings.timeoutMs, connectionTimeout: this.#settings.timeoutMs },
        // Plain PUTs and GETs: S3-compatible stores (Ceph, MinIO, s3rver) need no checksum trailers.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
    }
    return { client: this.#client, sdk: this.#sdk };
  }

  /** An SDK error as a DuccError that says what failed and whether to try again; never with credentials. */
  #error(error: unknown, doing: string): DuccError {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const name = (error as { name?: string }).name ?? 'Error';
    const text = `${doing} on dogestry remote '${this.#remote.name}' (${this.description}) failed: ${name}: ${errorMessage(error)}`;
    if (name === 'NoSuchBucket') return new DuccError('BOT_ERR_REGISTRY_NOT_FOUND', text, { cause: error });
    if (status === 401 || status === 403) return new DuccError('BOT_ERR_REGISTRY_AUTH', text, { cause: error, status });
    if (status !== undefined) return new DuccError('BOT_ERR_REGISTRY', text, { cause: error, status });
    return new DuccError('BOT_ERR_REGISTRY_UNREACHABLE', text, { cause: error, temporary: true });
  }
}

function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return name === 'NoSuchKey' || name === 'NotFound';
}

/** The store of a remote. */
export function dogestryStore(remote: DogestryRemote, env: NodeJS.ProcessEnv, settings: Pick<RegistrySettings, 'maxRetries' | 'timeoutMs'>): DogestryStore {
  return remote.kind === 'directory' ? new DirectoryStore(remote.path) : new S3Store(remote, env, settings);
}
