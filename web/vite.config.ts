import { defineConfig } from "vite";

// The API serves web/dist at /demo in dev mode (GET /demo, /demo/config.json, /demo/assets/...).
export default defineConfig({
  base: "/demo/",
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 600 }, // livekit-client is ~540 kB
});
