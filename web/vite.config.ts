import { defineConfig } from "vite";

// JSX is compiled by esbuild (React's automatic runtime), so no React plugin is needed. The build goes into the
// Python package, which serves it at `/`; `npm run dev` proxies the API to a `rapgpt serve` on port 8000.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "../rapgpt/serve/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/v1": "http://127.0.0.1:8000",
      "/health": "http://127.0.0.1:8000",
    },
  },
  test: { environment: "node" },
});
