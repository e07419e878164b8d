import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Debian's Chromium, driven by playwright-core (which never downloads a browser here). */
export const chromiumPath = "/usr/bin/chromium";

/** Whether the browser tests can run; in CI they must (.ci/run installs the package). */
export const haveChromium = existsSync(chromiumPath);
if (process.env.CI && !haveChromium) throw new Error(`${chromiumPath} is missing: .ci/run installs Debian's chromium`);

/** Starts headless Chromium as root on a machine with no network but loopback. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      "--no-first-run",
    ],
  });
}
