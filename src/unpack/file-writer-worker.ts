/**
 * The file-writer thread: creates the small regular files of layers being unpacked, so that the kernel
 * work of creating them (open, write, futimes, close: most of the cost of a layer of many small files)
 * runs on a second core while the main thread parses the archive. Every job names a new file in a
 * directory the main thread made and does not change until the batch is confirmed; the file is created
 * with O_EXCL|O_NOFOLLOW, so nothing that exists is ever written through. It also makes the hard links
 * of a flat tree that the directory publisher hands over (link(2) never follows or replaces the new name).
 */
import { closeSync, constants as fsConstants, fchmodSync, fchownSync, futimesSync, openSync, writeSync } from 'node:fs';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { unpackJob, type BatchDone, type FileJob, type LinkBatch, type WriteBatch, type WriterMessage } from './file-writer-protocol.ts';
import { linkOrCopy } from './link-file.ts';
import { installYieldGate, stepAside } from '../util/yield-gate.ts';

// Started by `ducc serve`'s conversion thread: steps aside with it while webhooks are answered.
installYieldGate((workerData as { gate?: SharedArrayBuffer } | null)?.gate);

interface Session {
  port: MessagePort;
  progress: Int32Array;
}

const sessions = new Map<number, Session>();
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

parentPort!.on('message', (message: WriterMessage) => {
  switch (message.kind) {
    case 'open':
      sessions.set(message.session, { port: message.port, progress: new Int32Array(message.progress) });
      break;
    case 'close':
      sessions.get(message.session)?.port.close();
      sessions.delete(message.session);
      break;
    case 'batch': {
      const session = sessions.get(message.session);
      if (session === undefined) break;
      const failure = writeBatch(message);
      answer(session, { seq: message.seq, buffer: message.buffer, ...(failure ? { failure } : {}) }, [message.buffer]);
      break;
    }
    case 'links': {
      const session = sessions.get(message.session);
      if (session === undefined) break;
      const failure = linkBatch(message);
      answer(session, { seq: message.seq, ...(failure ? { failure } : {}) }, []);
      break;
    }
    case 'fail-for-test':
      throw new Error('file-writer thread failed on request (test)');
  }
});

/** The answer is on the port before the count moves: whoever sees the count sees the answer. */
function answer(session: Session, done: BatchDone, transfer: ArrayBuffer[]): void {
  session.port.postMessage(done, transfer);
  Atomics.add(session.progress, 0, 1);
  Atomics.notify(session.progress, 0);
}

/** Files or links between two looks at the yield gate (a batch of 256 small files is ~10-20 ms of work). */
const STEP_ASIDE_EVERY = 16;

function writeBatch(batch: WriteBatch): BatchDone['failure'] {
  const buffer = Buffer.from(batch.buffer);
  for (let index = 0; index < batch.paths.length; index++) {
    if (index % STEP_ASIDE_EVERY === 0) stepAside();
    try {
      writeFile(buffer, unpackJob(batch, index));
    } catch (error) {
      return failureAt(index, error);
    }
  }
  return undefined;
}

function linkBatch(batch: LinkBatch): BatchDone['failure'] {
  for (let index = 0; index < batch.paths.length; index++) {
    if (index % STEP_ASIDE_EVERY === 0) stepAside();
    try {
      linkOrCopy(batch.sources[index]!, batch.paths[index]!);
    } catch (error) {
      return failureAt(index, error);
    }
  }
  return undefined;
}

function failureAt(index: number, error: unknown): NonNullable<BatchDone['failure']> {
  const { message, code, syscall } = error as NodeJS.ErrnoException;
  return { index, message: String(message), ...(code === undefined ? {} : { code }), ...(syscall === undefined ? {} : { syscall }) };
}

function writeFile(buffer: Buffer, job: FileJob): void {
  const fd = openSync(job.path, CREATE_FLAGS, job.createMode);
  try {
    let written = 0;
    while (written < job.size) written += writeSync(fd, buffer, job.offset + written, job.size - written);
    if (job.uid !== -1) fchownSync(fd, job.uid, job.gid);
    // chmod after chown: chown clears setuid/setgid.
    if (job.createMode !== job.mode) fchmodSync(fd, job.mode);
    futimesSync(fd, job.mtime, job.mtime);
  } finally {
    closeSync(fd);
  }
}
