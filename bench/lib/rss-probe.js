/**
 * Loaded with `node --import` before bin/ducc.js in the bench's cvmfs section: at exit, writes this
 * process's own peak RSS in KiB (process.resourceUsage().maxRSS, i.e. getrusage(RUSAGE_SELF): its threads
 * included, its children not) to the file named by BENCH_RSS_FILE. GNU time reports the largest
 * process of the whole tree instead, which with the cvmfs publisher is cvmfs_swissknife.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_RSS_FILE;
if (file) process.on('exit', () => writeFileSync(file, `${process.resourceUsage().maxRSS}\n`));
