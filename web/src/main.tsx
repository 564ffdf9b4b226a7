import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClientProvider } from "@tanstack/react-query";
import { TransportProvider } from "@connectrpc/connect-query";
import { App, boot } from "./App";
import { I18nProvider } from "./i18n";
import { queryClient } from "./query";
import { transport } from "./session";
import "./styles.css";

// Who is signed in, and the screen's first calls: asked at once, while React renders its first frame.
boot();

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
