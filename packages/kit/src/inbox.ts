/**
 * A stream's buffer of live events: pushed by the hub, taken by the stream one at a time. When a
 * slow client lets it grow past `max`, the buffer is dropped and the next take says "overflow":
 * the stream then reads what it missed from the database instead of holding it in memory.
 */
export class Inbox<T> {
  private items: T[] = [];
  private overflowed = false;
  private wake: (() => void) | undefined;

  constructor(private readonly max: number) {}

  push(item: T) {
    if (this.overflowed) return;
    if (this.items.length >= this.max) {
      this.items = [];
      this.overflowed = true;
    } else {
      this.items.push(item);
    }
    this.wake?.();
  }

  get size() {
    return this.items.length;
  }

  /** The next item; "timeout" after `ms` with none; "aborted" when `signal` fires. */
  async next(ms: number, signal: AbortSignal): Promise<T | "timeout" | "aborted" | "overflow"> {
    for (;;) {
      if (signal.aborted) return "aborted";
      if (this.overflowed) {
        this.overflowed = false;
        return "overflow";
      }
      if (this.items.length > 0) return this.items.shift()!;
      const woke = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => done(false), ms);
        const onAbort = () => done(true);
        const done = (v: boolean) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          this.wake = undefined;
          resolve(v);
        };
        this.wake = () => done(true);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (!woke) return "timeout";
    }
  }
}
