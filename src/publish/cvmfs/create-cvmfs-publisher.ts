import { readFile } from 'node:fs/promises';
import type { Publisher } from '../publisher.ts';
import { CvmfsGatewayPublisher } from './cvmfs-gateway-publisher.ts';
import { CvmfsServerPublisher, type CvmfsServerPublisherOptions } from './cvmfs-publisher.ts';

/**
 * The cvmfs publisher for a repository on this node: through the repository gateway when the repository's
 * upstream is a gateway (`CVMFS_UPSTREAM_STORAGE=gw,...` in its server.conf, as `cvmfs_server mkfs -u gw,...`
 * writes it), else the local one. `gateway: true/false` in the config overrides what server.conf says.
 */
export async function createCvmfsPublisher(options: CvmfsServerPublisherOptions & { gateway?: boolean | 'auto' }): Promise<Publisher> {
  const { gateway = 'auto', ...rest } = options;
  const throughGateway = gateway === 'auto' ? await upstreamIsGateway(options.repository) : gateway;
  return throughGateway ? new CvmfsGatewayPublisher(rest) : new CvmfsServerPublisher(rest);
}

/** Whether the last CVMFS_UPSTREAM_STORAGE of the repository's server.conf names a gateway. */
export async function upstreamIsGateway(repository: string): Promise<boolean> {
  const conf = await readFile(`/etc/cvmfs/repositories.d/${repository}/server.conf`, 'utf8').catch(() => '');
  const upstream = [...conf.matchAll(/^CVMFS_UPSTREAM_STORAGE=(.*)$/gm)].at(-1)?.[1]?.trim() ?? '';
  return upstream.startsWith('gw,');
}
