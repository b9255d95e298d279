/**
 * Messages between the layer extractor (main thread) and the file-writer thread (file-writer-worker.ts).
 * The extractor opens a session per layer, then sends batches of small files (the directory publisher,
 * building a flat tree, sends batches of hard links the same way); the writer answers each
 * batch on the session's port with a BatchDone (giving the buffer back for reuse, and saying where it
 * failed if it did), then increments `progress[0]` (an Int32Array over a SharedArrayBuffer). The
 * extractor waits on `progress` with Atomics.wait and reads the answers with receiveMessageOnPort, so it
 * never needs the event loop for this.
 */
import type { MessagePort } from 'node:worker_threads';

/** One new regular file: created O_EXCL|O_NOFOLLOW in a directory that exists, content from the batch buffer. */
export interface FileJob {
  /** Absolute path; every parent is a real directory (no symlink) when the job is sent. */
  path: string;
  /** Where its content starts in the batch buffer, and its length. */
  offset: number;
  size: number;
  /** Mode given to open(2); when it differs from `mode`, fchmod follows. */
  createMode: number;
  mode: number;
  /** Owner to set with fchown, or -1 to leave the new file ours. */
  uid: number;
  gid: number;
  /** Modification (and access) time, in seconds since the epoch. */
  mtime: number;
}

export interface OpenSession {
  kind: 'open';
  session: number;
  port: MessagePort;
  progress: SharedArrayBuffer;
}

/**
 * A batch of files, packed for a cheap structured clone (one typed array instead of an object per
 * file): `paths[i]` with the FileJob numbers of file i at `numbers[i * JOB_FIELDS ...]`, in the order
 * packJob writes them.
 */
export interface WriteBatch {
  kind: 'batch';
  session: number;
  /** Send order within the session, echoed in a failure. */
  seq: number;
  buffer: ArrayBuffer;
  paths: string[];
  numbers: Float64Array;
}

/** Numbers per file: offset, size, createMode, mode, uid, gid, mtime. */
export const JOB_FIELDS = 7;

export function packJob(numbers: Float64Array, index: number, offset: number, job: Omit<FileJob, 'offset'>): void {
  const at = index * JOB_FIELDS;
  numbers[at] = offset;
  numbers[at + 1] = job.size;
  numbers[at + 2] = job.createMode;
  numbers[at + 3] = job.mode;
  numbers[at + 4] = job.uid;
  numbers[at + 5] = job.gid;
  numbers[at + 6] = job.mtime;
}

export function unpackJob(batch: Pick<WriteBatch, 'paths' | 'numbers'>, index: number): FileJob {
  const at = index * JOB_FIELDS;
  const n = batch.numbers;
  return {
    path: batch.paths[index]!,
    offset: n[at]!,
    size: n[at + 1]!,
    createMode: n[at + 2]!,
    mode: n[at + 3]!,
    uid: n[at + 4]!,
    gid: n[at + 5]!,
    mtime: n[at + 6]!,
  };
}

/**
 * A batch of hard links for a flat tree: `paths[i]` is made a hard link of `sources[i]` (or a copy with
 * its metadata where the filesystem refuses, see link-file.ts), in order. Every parent exists.
 */
export interface LinkBatch {
  kind: 'links';
  session: number;
  seq: number;
  sources: string[];
  paths: string[];
}

export interface CloseSession {
  kind: 'close';
  session: number;
}

/** Makes the thread throw, as a bug in it would: lets the tests check that its sessions notice. */
export interface FailForTest {
  kind: 'fail-for-test';
}

export type WriterMessage = OpenSession | WriteBatch | LinkBatch | CloseSession | FailForTest;

/** A batch written, or stopped at `failure.index`: that file and the rest were not (fully) written. */
export interface BatchDone {
  seq: number;
  /** The batch's buffer, transferred back (none for a LinkBatch). */
  buffer?: ArrayBuffer;
  failure?: { index: number; message: string; code?: string; syscall?: string };
}
