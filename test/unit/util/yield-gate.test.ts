/**
 * The yield gate (src/util/yield-gate.ts): a conversion thread steps aside while the main thread raises
 * the gate, at most 100 ms per look, and goes on at once when it is lowered; the main thread, and a
 * thread without a gate, never wait.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { installYieldGate, stepAside, YieldGate } from '../../../src/util/yield-gate.ts';

/** In a worker thread with the gate installed: how long one stepAside() took, in ms. */
function timeStepAside(gate: YieldGate | undefined, lowerAfterMs?: number): Promise<number> {
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.module).then(({ installYieldGate, stepAside }) => {
      installYieldGate(workerData.gate);
      parentPort.once('message', () => {
        const started = performance.now();
        stepAside();
        parentPort.postMessage(performance.now() - started);
      });
      parentPort.postMessage('ready');
    });
  `;
  const module = new URL('../../../src/util/yield-gate.ts', import.meta.url).href;
  const worker = new Worker(source, { eval: true, workerData: { module, gate: gate?.buffer } });
  return new Promise<number>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('message', (message: unknown) => {
      if (message === 'ready') {
        worker.postMessage('go');
        if (lowerAfterMs !== undefined) setTimeout(() => gate!.lower(), lowerAfterMs);
        return;
      }
      void worker.terminate();
      resolve(message as number);
    });
  });
}

it('a thread steps aside while the gate is up, goes on as soon as it is lowered, and waits at most 100 ms', async () => {
  const gate = new YieldGate();
  assert.ok((await timeStepAside(gate)) < 20, 'waited with the gate down');
  gate.raise();
  const lowered = await timeStepAside(gate, 30);
  assert.ok(lowered >= 20 && lowered < 95, `waited ${lowered} ms for a gate lowered after 30 ms`);
  gate.raise();
  const capped = await timeStepAside(gate);
  assert.ok(capped >= 90 && capped < 1000, `waited ${capped} ms for a gate never lowered`);
  gate.lower();
});

it('a thread without a gate, and the main thread, never wait', async () => {
  assert.ok((await timeStepAside(undefined)) < 20);
  const gate = new YieldGate();
  gate.raise();
  installYieldGate(gate.buffer);
  try {
    const started = performance.now();
    stepAside();
    assert.ok(performance.now() - started < 20);
  } finally {
    installYieldGate(undefined);
  }
});
