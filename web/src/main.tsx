import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { TransportProvider } from "@connectrpc/connect-query";
import { Code, ConnectError } from "@connectrpc/connect";
import { App } from "./App";
import { I18nProvider } from "./i18n";
import { start, transport } from "./session";
import "./styles.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      // Refused calls are not retried (the transport already refreshed once); network errors are.
      retry: (n, e) => n < 2 && ![Code.Unauthenticated, Code.PermissionDenied, Code.NotFound, Code.InvalidArgument].includes(ConnectError.from(e).code),
    },
  },
});

// Who is signed in: asked at once, while React renders its first frame (App waits for the answer).
start().catch(() => {}); // App shows the error

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>
        <I18nProvider>
          <App />
        </I18nProvider>
      </QueryClientProvider>
    </TransportProvider>
  </StrictMode>,
);
