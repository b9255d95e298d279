/**
 * Helper process of crash.test.ts: removes one public name of a real repository with the cvmfs
 * publisher (a classic transaction: a symlink cannot be removed by an ingest), so that the test can
 * freeze it inside the transaction (stall-hook) and SIGKILL it there.
 *
 * usage: node remove-in-transaction.ts REPOSITORY PATH LOCK_DIR
 */
import { pino } from 'pino';
import { CvmfsServerPublisher } from '../../src/publish/cvmfs/cvmfs-publisher.ts';

const [repository, path, lockDir] = process.argv.slice(2);
if (repository === undefined || path === undefined || lockDir === undefined) throw new Error('usage: remove-in-transaction.ts REPOSITORY PATH LOCK_DIR');
const publisher = new CvmfsServerPublisher({ repository, lockDir, logger: pino({ level: 'warn' }) });
await publisher.transaction((tx) => tx.remove(path));
