/**
 * The console's build: one entry (index.html → src/main.tsx), hashed files in dist/assets
 * (served with a year's immutable cache), no inline scripts (the CSP allows none).
 * `npm run dev -w @crm/web` proxies the API to an all-in-one on :8080.
 */
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const api = process.env.CRM_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    // The CSP has no 'unsafe-inline': keep every asset a file, never a data: URL in a script.
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  server: {
    proxy: { "^/(crm|grpc)\\.": api },
  },
});
