/**
 * Natural batching per key (group commit): the first item for a key runs at once, alone; items
 * that arrive while its batch runs wait and go together in the next one. Nothing waits for a
 * timer, so a quiet key pays no latency, and a busy one (a chat many people write to) stores
 * many messages per transaction instead of queueing them one by one on its row lock.
 *
 * One bad item never fails its neighbours: when a batch of several fails as a whole and
 * `retryAlone(err)` says the failure may be one item's (e.g. a value PostgreSQL refused, which
 * rolls back the whole transaction), each item runs again alone, so only the culprit fails.
 */
export type BatchRunner<I, R> = (key: string, items: I[]) => Promise<(R | Error)[]>;

export interface BatchOptions {
  /** Whether a failed batch's items are retried one by one (default: always). */
  retryAlone?: (err: unknown) => boolean;
}

export function keyedBatches<I, R>(run: BatchRunner<I, R>, maxBatch: number, opts: BatchOptions = {}) {
  interface Waiting {
    item: I;
    resolve: (r: R) => void;
    reject: (e: unknown) => void;
  }
  const queues = new Map<string, Waiting[]>(); // a key is here while one of its batches runs

  const retryAlone = opts.retryAlone ?? (() => true);

  async function runBatch(key: string, batch: Waiting[]) {
    try {
      const results = await run(key, batch.map((w) => w.item));
      batch.forEach((w, i) => {
        const r = results[i];
        if (r instanceof Error) w.reject(r);
        else if (r === undefined) w.reject(new Error(`batch runner returned no result for item ${i} of ${batch.length}`));
        else w.resolve(r);
      });
    } catch (err) {
      if (batch.length === 1 || !retryAlone(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      for (const w of batch) await runBatch(key, [w]); // in order: the innocent succeed, the culprit fails
    }
  }

  async function drain(key: string, queue: Waiting[]) {
    while (queue.length > 0) await runBatch(key, queue.splice(0, maxBatch));
    queues.delete(key);
  }

  return {
    submit(key: string, item: I): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        const queue = queues.get(key);
        if (queue) return void queue.push({ item, resolve, reject });
        const fresh = [{ item, resolve, reject }];
        queues.set(key, fresh);
        void drain(key, fresh);
      });
    },
    /** Keys with a batch running (for tests). */
    busy: () => queues.size,
  };
}
