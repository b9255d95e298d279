/**
 * Test support for the registry-less sources: copies with skopeo (which writes the OCI layouts and the
 * archives), a dogestry remote made from a `docker save` archive the way `dogestry push` makes one
 * (dogestry/dogestry cli/push.go: each `<id>/` of the archive becomes `images/<id>/`, each repository tag
 * a file `repositories/<repo>/<tag>` holding the id), and a real S3-protocol server (s3rver) on loopback.
 */
import { mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import tarStream from 'tar-stream';
import { createReadStream } from 'node:fs';
import { runSkopeo } from './oci-image.ts';

/** `skopeo copy SRC DEST` (source registries over plain http, without credentials). */
export async function skopeoCopy(source: string, destination: string): Promise<void> {
  const args = ['copy', '--quiet'];
  if (source.startsWith('docker://')) args.push('--src-tls-verify=false', '--src-no-creds');
  if (destination.startsWith('docker://')) args.push('--dest-tls-verify=false', '--dest-no-creds');
  await runSkopeo([...args, source, destination]);
}

/**
 * Unrolls a `docker save` archive into a dogestry remote directory as `dogestry push` does: the legacy
 * image directories `<id>/{json,VERSION,layer.tar}` into `images/<id>/` (layer.tar as a plain file, as
 * docker save wrote it in dogestry's time), and the `repositories` file into `repositories/<repo>/<tag>`.
 */
export async function dogestryPushFromArchive(
  archive: string,
  remoteDir: string,
  options: { skipExisting?: boolean } = {},
): Promise<{ ids: string[]; tags: Record<string, string> }> {
  const members = new Map<string, { type: string; data: Buffer; linkname?: string }>();
  await new Promise<void>((resolve, reject) => {
    const extract = tarStream.extract();
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on('end', () => {
        members.set(header.name.replace(/^\.\//, ''), {
          type: header.type ?? 'file',
          data: Buffer.concat(chunks),
          ...(header.linkname ? { linkname: header.linkname } : {}),
        });
        next();
      });
      stream.on('error', reject);
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    createReadStream(archive).pipe(extract);
  });
  const ids = [...members.keys()].filter((name) => /^[a-f0-9]{64}\/json$/.test(name)).map((name) => name.slice(0, 64));
  for (const id of ids) {
    // dogestry push writes only the images the remote does not have yet.
    if (options.skipExisting && (await stat(join(remoteDir, 'images', id, 'json')).catch(() => undefined))) continue;
    for (const file of ['json', 'VERSION', 'layer.tar']) {
      let member = members.get(`${id}/${file}`);
      if (member?.type === 'symlink') member = members.get(join(id, member.linkname!).replace(/^\.\//, ''));
      if (member === undefined) throw new Error(`${archive}: no ${id}/${file}`);
      await mkdir(join(remoteDir, 'images', id), { recursive: true });
      await writeFile(join(remoteDir, 'images', id, file), member.data);
    }
  }
  const repositories = JSON.parse(members.get('repositories')!.data.toString('utf8')) as Record<string, Record<string, string>>;
  const tags: Record<string, string> = {};
  for (const [repo, byTag] of Object.entries(repositories)) {
    for (const [tag, id] of Object.entries(byTag)) {
      await mkdir(join(remoteDir, 'repositories', repo), { recursive: true });
      await writeFile(join(remoteDir, 'repositories', repo, tag), id);
      tags[`${repo}:${tag}`] = id;
    }
  }
  return { ids, tags };
}

/** Every file below `dir`, relative, sorted. */
export async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

export interface TestS3 {
  /** http://127.0.0.1:PORT of the server itself. */
  endpoint: string;
  /** 127.0.0.1:PORT */
  host: string;
  bucket: string;
  /** The access key id the server knows (s3rver's). */
  accessKeyId: string;
  secretAccessKey: string;
  /** Event notification records of the objects created since start (what the server would send). */
  events: unknown[];
  /** Uploads the files of `dir` under `prefix`. */
  upload(dir: string, prefix: string): Promise<void>;
}

/** Starts s3rver (a real S3-protocol server) on 127.0.0.1 with one bucket; stopped when the test ends. */
export async function startS3(t: Pick<TestContext, 'after'>, bucket = 'images'): Promise<TestS3> {
  const { default: S3rver } = await import('s3rver');
  const directory = await mkdtemp(join(tmpdir(), 'ducc-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] });
  const events: unknown[] = [];
  server.on('event', (event: unknown) => events.push(event));
  const address = (await server.run()) as { port: number };
  t.after(async () => {
    await server.close();
    await rm(directory, { recursive: true, force: true });
  });
  const host = `127.0.0.1:${address.port}`;
  const s3: TestS3 = {
    endpoint: `http://${host}`,
    host,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    events,
    upload: async (dir, prefix) => {
      const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
      const client = new S3Client({
        region: 'us-east-1',
        endpoint: s3.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
        requestChecksumCalculation: 'WHEN_REQUIRED',
      });
      for (const file of await filesBelow(dir)) {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${file}`, Body: await readFile(join(dir, file)) }));
      }
      client.destroy();
    },
  };
  return s3;
}
