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
    proxy: { "/api": "http://127.0.0.1:20001" },
  },
  test: { include: ["src/**/*.test.ts"] },
});
