import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";

// Swagger UI renders the model server's OpenAPI document at `/v2/docs`. Its files ship in the
// binary with the rest of the UI (no CDN: model servers often run without internet access),
// outside `static-files/` because their names carry no content hash.
const SWAGGER_UI_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"];

function swaggerUi(): Plugin {
  const dist = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  return {
    name: "mlox-swagger-ui",
    apply: "build",
    generateBundle() {
      for (const file of SWAGGER_UI_FILES) {
        this.emitFile({ type: "asset", fileName: `swagger-ui/${file}`, source: readFileSync(join(dist, file)) });
      }
    },
  };
}

// Relative asset URLs keep the UI working behind a path prefix; the server answers
// `/static-files/*` from the files embedded at build time.
export default defineConfig({
  base: "./",
  plugins: [react(), swaggerUi()],
  build: {
    assetsDir: "static-files",
    outDir: process.env.MLOX_WEB_OUT_DIR ?? "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: {
      "/ajax-api": "http://127.0.0.1:5000",
      "/api": "http://127.0.0.1:5000",
      "/get-artifact": "http://127.0.0.1:5000",
    },
  },
});
