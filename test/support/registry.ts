/**
 * Test support: a real registry (Debian's docker-registry, i.e. distribution 2.8) on loopback.
 *
 * For htpasswd auth distribution accepts only bcrypt hashes. Neither apache2-utils' `htpasswd` nor a
 * bcrypt npm package is a project dependency, and `openssl passwd` cannot make bcrypt, so bcrypt ($2b$)
 * is implemented here in plain Node (Blowfish's initial state is the hex expansion of π, computed with
 * BigInt rather than pasted as a 4 KiB table).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';

export interface TestRegistry {
  /** 127.0.0.1:PORT */
  host: string;
  /** http://127.0.0.1:PORT */
  url: string;
  storageDir: string;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  htpasswd?: { username: string; password: string };
  /** Placed as-is under `notifications:` in the registry's config. */
  notifications?: unknown;
}

const REGISTRY_BINARY = '/usr/bin/docker-registry';
const START_TIMEOUT_MS = 15_000;

/**
 * Starts docker-registry on 127.0.0.1 with a free port, its own temp config and filesystem storage
 * (delete enabled; htpasswd auth only when asked for), waits until GET /v2/ answers, and stops it
 * (removing its files) when the test ends.
 */
export async function startRegistry(t: TestContext, options: StartRegistryOptions = {}): Promise<TestRegistry> {
  if (!existsSync(REGISTRY_BINARY)) {
    throw new Error(`${REGISTRY_BINARY} is missing: install the Debian package docker-registry (apt-get install docker-registry; scripts/with-deps does it)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'ducc-test-registry-'));
  const storageDir = join(dir, 'storage');
  await mkdir(storageDir);
  let registry: TestRegistry | undefined;
  try {
    for (let attempt = 0; registry === undefined; attempt++) {
      try {
        registry = await launch(dir, storageDir, options);
      } catch (error) {
        // the free port may have been taken between probing and binding: try another one
        if (attempt >= 2 || !(error instanceof PortInUseError)) throw error;
      }
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  t.after(() => registry.stop());
  return registry;
}

class PortInUseError extends Error {}

async function launch(dir: string, storageDir: string, options: StartRegistryOptions): Promise<TestRegistry> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true }, formatter: 'text' },
    storage: {
      filesystem: { rootdirectory: storageDir },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: host, secret: randomBytes(16).toString('hex'), headers: { 'X-Content-Type-Options': ['nosniff'] } },
  };
  if (options.htpasswd !== undefined) {
    const path = join(dir, 'htpasswd');
    await writeFile(path, `${options.htpasswd.username}:${bcryptHash(options.htpasswd.password, 5)}\n`, { mode: 0o600 });
    config['auth'] = { htpasswd: { realm: 'ducc-test-registry', path } };
  }
  if (options.notifications !== undefined) config['notifications'] = options.notifications;
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, stringify(config));

  const child = spawn(REGISTRY_BINARY, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let running = true;
  // if the test process exits without running its after-hooks, do not leave the registry behind
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => {
    running = false;
    process.off('exit', killOnExit);
  });

  const stop = async () => {
    if (running) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await waitUntilServing(`http://${host}/v2/`, child, () => running);
  } catch (error) {
    await stopProcess(child, exited, () => running);
    if (/address already in use/i.test(output)) throw new PortInUseError(`port ${port} taken`);
    throw new Error(`docker-registry did not start: ${(error as Error).message}\n${output}`, { cause: error });
  }
  return { host, url: `http://${host}`, storageDir, stop };
}

async function stopProcess(child: ChildProcess, exited: Promise<unknown>, running: () => boolean): Promise<void> {
  if (!running()) return;
  child.kill('SIGKILL');
  await exited;
}

async function waitUntilServing(url: string, child: ChildProcess, running: () => boolean): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (!running()) throw new Error(`exited with code ${child.exitCode}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200 || response.status === 401) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`GET ${url} did not answer within ${START_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// -----------------------------------------------------------------------------------------------------
// bcrypt ($2b$), enough for writing htpasswd files
// -----------------------------------------------------------------------------------------------------

let blowfishInit: Uint32Array | undefined;

/** The first 18 + 4·256 32-bit words of π's fractional hex digits: Blowfish's P-array and S-boxes. */
function blowfishInitialState(): Uint32Array {
  if (blowfishInit !== undefined) return blowfishInit;
  const words = 18 + 4 * 256;
  const bits = BigInt(words * 32);
  const guard = 64n;
  const one = 1n << (bits + guard);
  // Machin: π = 16·atan(1/5) − 4·atan(1/239)
  const atanInverse = (x: bigint): bigint => {
    let sum = 0n;
    let term = one / x;
    const x2 = x * x;
    let k = 1n;
    let positive = true;
    while (term !== 0n) {
      sum += positive ? term / k : -(term / k);
      term /= x2;
      k += 2n;
      positive = !positive;
    }
    return sum;
  };
  const pi = 16n * atanInverse(5n) - 4n * atanInverse(239n);
  const fraction = (pi >> guard) & ((1n << bits) - 1n);
  const hex = fraction.toString(16).padStart(words * 8, '0');
  const state = new Uint32Array(words);
  for (let i = 0; i < words; i++) state[i] = parseInt(hex.slice(i * 8, i * 8 + 8), 16);
  blowfishInit = state;
  return state;
}

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const STD_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function bcryptBase64(data: Buffer): string {
  const std = data.toString('base64').replace(/=+$/, '');
  let out = '';
  for (const c of std) out += BCRYPT_ALPHABET[STD_ALPHABET.indexOf(c)];
  return out;
}

/** bcrypt hash `$2b$<cost>$<salt><hash>` of a password (UTF-8, first 72 bytes), with a random or given 16-byte salt. */
export function bcryptHash(password: string, cost = 5, salt: Buffer = randomBytes(16)): string {
  if (salt.length !== 16) throw new Error('bcrypt salt must be 16 bytes');
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new Error('bcrypt cost must be 4..31');
  const key = Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])]).subarray(0, 72);
  const init = blowfishInitialState();
  const P = init.slice(0, 18);
  const S = init.slice(18);

  const F = (x: number): number => ((((S[x >>> 24]! + S[256 + ((x >>> 16) & 0xff)]!) | 0) ^ S[512 + ((x >>> 8) & 0xff)]!) + S[768 + (x & 0xff)]!) | 0;
  const block = new Uint32Array(2);
  const encipher = () => {
    let l = block[0]!;
    let r = block[1]!;
    l ^= P[0]!;
    for (let i = 1; i <= 16; i += 2) {
      r ^= F(l) ^ P[i]!;
      l ^= F(r) ^ P[i + 1]!;
    }
    r ^= P[17]!;
    block[0] = r;
    block[1] = l;
  };
  const stream = (data: Buffer) => {
    let pos = 0;
    return (): number => {
      let word = 0;
      for (let i = 0; i < 4; i++) {
        word = (word << 8) | data[pos]!;
        pos = (pos + 1) % data.length;
      }
      return word >>> 0;
    };
  };
  const expand = (keyBytes: Buffer, saltBytes: Buffer | undefined) => {
    const nextKey = stream(keyBytes);
    for (let i = 0; i < 18; i++) P[i] = P[i]! ^ nextKey();
    const nextSalt = saltBytes === undefined ? () => 0 : stream(saltBytes);
    block[0] = 0;
    block[1] = 0;
    for (let i = 0; i < 18; i += 2) {
      block[0] = block[0]! ^ nextSalt();
      block[1] = block[1]! ^ nextSalt();
      encipher();
      P[i] = block[0]!;
      P[i + 1] = block[1]!;
    }
    for (let i = 0; i < 1024; i += 2) {
      block[0] = block[0]! ^ nextSalt();
      block[1] = block[1]! ^ nextSalt();
      encipher();
      S[i] = block[0]!;
      S[i + 1] = block[1]!;
    }
  };

  expand(key, salt);
  for (let round = 0; round < 2 ** cost; round++) {
    expand(key, undefined);
    expand(salt, undefined);
  }
  const text = Buffer.from('OrpheanBeholderScryDoubt', 'latin1');
  const words = new Uint32Array(6);
  for (let i = 0; i < 6; i++) words[i] = text.readUInt32BE(i * 4);
  for (let i = 0; i < 6; i += 2) {
    block[0] = words[i]!;
    block[1] = words[i + 1]!;
    for (let n = 0; n < 64; n++) encipher();
    words[i] = block[0]!;
    words[i + 1] = block[1]!;
  }
  const out = Buffer.alloc(24);
  for (let i = 0; i < 6; i++) out.writeUInt32BE(words[i]!, i * 4);
  return `$2b$${String(cost).padStart(2, '0')}$${bcryptBase64(salt)}${bcryptBase64(out.subarray(0, 23))}`;
}
