import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Relative asset URLs keep the UI working behind a path prefix; the server answers
// `/static-files/*` from the files embedded at build time.
export default defineConfig({
  base: "./",
  plugins: [react()],
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
