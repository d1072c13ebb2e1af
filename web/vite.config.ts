import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { defineConfig, type Plugin } from "vite";

// Swagger UI's files that the server's /docs page loads, copied from the swagger-ui-dist package into the build's
// swagger-ui/ folder (the name rapgpt/serve/docs.py looks for), so that the API docs need no CDN.
const SWAGGER_UI_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE"];

function swaggerUi(): Plugin {
  const dir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  return {
    name: "rapgpt-swagger-ui",
    apply: "build",
    generateBundle() {
      for (const name of SWAGGER_UI_FILES) {
        this.emitFile({ type: "asset", fileName: `swagger-ui/${name}`, source: readFileSync(join(dir, name)) });
      }
    },
  };
}

// JSX is compiled by esbuild (React's automatic runtime), so no React plugin is needed. The build goes into the
// Python package, which serves it at `/`; `npm run dev` proxies the API to a `rapgpt serve` on port 8000.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic" },
  plugins: [swaggerUi()],
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
