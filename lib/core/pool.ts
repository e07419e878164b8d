/**
 * Runs `work` on the items, at most `concurrency` at a time, in order. When `signal` aborts, items
 * not yet started are left out and returned, for the caller to hand back.
 */
export async function runPool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>, signal?: AbortSignal): Promise<T[]> {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      if (signal?.aborted) {
        queue.unshift(item);
        return;
      }
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, queue.length)) }, worker));
  return queue;
}
