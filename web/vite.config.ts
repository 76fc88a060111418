import { defineConfig } from "vite";

// The API serves web/dist at /demo in dev mode (GET /demo, /demo/config.json, /demo/assets/...).
// `npm run dev` serves the page itself at http://127.0.0.1:5173/demo/ (another origin, allowed by make dev's
// publishable key) and asks the API (AGENTREADY_API, default make dev's) for config.json.
const api = process.env.AGENTREADY_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/demo/",
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 600 }, // livekit-client is ~540 kB
  server: {
    host: "127.0.0.1",
    port: 5173,
    strictPort: true,
    // changeOrigin: the API builds config.json's apiUrl from the Host it sees, which must be its own
    proxy: { "/demo/config.json": { target: api, changeOrigin: true } },
  },
});
