/**
 * The page's one TanStack Query client, and `prefetch`: a query started before the screen that
 * asks for it has rendered (prefetch.ts).
 */
import { QueryClient } from "@tanstack/react-query";
import { Code, ConnectError } from "@connectrpc/connect";
import { createQueryOptions } from "@connectrpc/connect-query";
import type { DescMessage, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { transport } from "./session";

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      // Refused calls are not retried (the transport already refreshed once); network errors are.
      retry: (n, e) => n < 2 && ![Code.Unauthenticated, Code.PermissionDenied, Code.NotFound, Code.InvalidArgument].includes(ConnectError.from(e).code),
    },
  },
});

/** Starts a query the screen will ask for with the same method and input; errors are left to the screen. */
export function prefetch<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, input: MessageInitShape<I>): void {
  void queryClient.prefetchQuery(createQueryOptions(method, input, { transport }));
}

/**
 * What a screen's chunk may export besides its component: `prefetch`, called by App's boot the
 * moment the chunk has arrived when the page opens on that screen (for screens whose calls are
 * not in prefetch.ts, which would put their message types into the first download).
 */
export interface ScreenModule {
  prefetch?(path: string, search: URLSearchParams): void;
}
