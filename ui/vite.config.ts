/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The bundle goes where the daemon serves it from (sluice.console.static); nothing is loaded from
// the internet at run time: every asset is in the bundle.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../src/sluice/console/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    // The dev server passes the API and the login to a running daemon, under the daemon's own Host (it refuses
    // any other name). Writes from here still carry this page's Origin, which the daemon refuses as
    // cross-origin: try edits against the built console.
    proxy: {
      "/api": { target: "http://127.0.0.1:20001", changeOrigin: true },
      "/login": { target: "http://127.0.0.1:20001", changeOrigin: true },
    },
  },
  test: { include: ["src/**/*.test.ts"] },
});
