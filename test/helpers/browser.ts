import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { describe } from 'vitest';

export const CHROMIUM = '/usr/bin/chromium';

/** CI installs Debian's chromium (.ci/run); elsewhere the browser tests run when it is there. */
export const describeInBrowser = existsSync(CHROMIUM) || process.env.CI === 'true' ? describe : describe.skip;

/**
 * Debian's chromium, headless, with nothing reaching for the internet: without the background-networking flags it
 * opens connections this machine refuses, many at a time.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
