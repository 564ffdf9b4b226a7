/**
 * A screen in a chunk of its own that renders at once when its chunk has already arrived.
 *
 * React.lazy suspends on its first render even when the import has resolved, and React then holds
 * the content back until 300 ms after the Suspense fallback appeared (its fallback throttle): a
 * screen whose chunk and data were fetched in parallel with Check (App's boot) would still show
 * "Loading…" for 300 ms. A screen made here renders its component directly once `load` has
 * resolved; before that it is a React.lazy as usual.
 */
import { lazy, useState, type Attributes, type ComponentType } from "react";

export interface LazyScreen<P, M = unknown> {
  /** Fetches the chunk (once; the browser caches the module) and gives its module. */
  load(): Promise<M>;
  Component: ComponentType<P>;
}

export function lazyScreen<M, P extends object>(load: () => Promise<M>, pick: (m: M) => ComponentType<P>): LazyScreen<P, M> {
  let loaded: M | undefined;
  const get = () => load().then((m) => (loaded = m));
  const Lazy = lazy(() => get().then((m) => ({ default: pick(m) })));
  function Screen(props: P) {
    // Decided once per mount: switching from the lazy wrapper to the component would remount it.
    const [ready] = useState(() => loaded !== undefined);
    if (ready && loaded) {
      const C = pick(loaded);
      return <C {...props} />;
    }
    return <Lazy {...(props as P & Attributes)} />;
  }
  return { load: get, Component: Screen };
}
