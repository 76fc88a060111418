// Drives the demo page in headless Chromium (playwright-core, the system's Chromium: no browser download):
// open URL, click Start, wait for "ready" or "failed", screenshot, print one JSON line with what the page showed.
// Used by tests/web/test_demo_page.py. Usage: node drive-demo.mjs URL [--screenshot PATH] [--timeout-ms N]
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    screenshot: { type: "string" },
    "timeout-ms": { type: "string", default: "45000" },
    chromium: { type: "string", default: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium" },
  },
});
const [url] = positionals;
const timeout = Number(values["timeout-ms"]);

const browser = await chromium.launch({
  executablePath: values.chromium,
  args: [
    "--no-sandbox", // CI runs as root, where Chromium's sandbox refuses to start
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns", // loopback ICE candidates as they are, for a local LiveKit
  ],
});
const log = [];
const apiCalls = [];
try {
  const page = await browser.newPage({ viewport: { width: 760, height: 600 } });
  page.on("console", (message) => log.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => log.push(`pageerror: ${error.message}`));
  // What the page sent to the API: the test checks that no secret key ever left the server side.
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (!url.pathname.startsWith("/api/") || request.method() === "OPTIONS") return; // a preflight has no token
    const bearer = request.headers()["authorization"]?.replace(/^Bearer /, "") ?? null;
    const accessToken = url.searchParams.get("access_token");
    apiCalls.push({ method: request.method(), path: url.pathname, bearer, accessToken });
  });
  await page.goto(url, { timeout });
  await page.click("#start", { timeout });
  await page.waitForFunction(
    () => ["ready", "failed"].includes(document.getElementById("status")?.dataset.state ?? ""),
    null,
    { timeout },
  );
  // The server's stage times are read just after ready: let them land before the screenshot.
  const serverReady = () =>
    [...document.querySelectorAll("#timings tr")].some((row) => row.textContent?.includes("server: ready"));
  await page.waitForFunction(serverReady, null, { timeout: 4000 }).catch(() => {});
  const shown = await page.evaluate(() => {
    const status = document.getElementById("status");
    return {
      state: status?.dataset.state,
      readyVia: status?.dataset.readyVia ?? null,
      text: status?.textContent,
      detail: document.getElementById("detail")?.textContent,
      timings: [...document.querySelectorAll("#timings tr")].map((row) => row.textContent),
      audioElements: document.querySelectorAll("#audio audio").length,
    };
  });
  if (values.screenshot) await page.screenshot({ path: values.screenshot });
  console.log(JSON.stringify({ ...shown, apiCalls, log }));
} catch (error) {
  console.log(JSON.stringify({ state: "driver-error", error: String(error), log }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
