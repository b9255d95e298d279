import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Cleanup } from './tmp-dir.ts';

/**
 * Starts `server` on 127.0.0.1 with a free port and closes it, open keep-alive connections included,
 * when the test ends.
 */
export async function listenOnLoopback(t: Cleanup, server: HttpServer | HttpsServer): Promise<{ host: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { host: `127.0.0.1:${port}`, port };
}
