// Opens an answer page in headless Debian chromium, optionally clicks a button, and
// prints what a person would have seen as one JSON line on stdout.
//
//   node answer_page.mjs <url> [Approve|Decline] [--again]
//
// --again: a second tab holds the same page; after the click in the first, click in the
// second (a double submit or a replayed form), then open the link once more.
import { chromium } from 'playwright-core';

const [url, button, again] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = { console: [] };
try {
  const page = await browser.newPage();
  page.on('console', (m) => result.console.push(m.text()));
  const shown = await page.goto(url);
  result.get_status = shown.status();
  result.csp = shown.headers()['content-security-policy'] || null;
  result.text = (await page.textContent('body')).trim();
  result.buttons = await page.$$eval('button', (bs) => bs.map((b) => b.textContent.trim()));
  const second = again === '--again' ? await browser.newPage() : null;
  if (second) await second.goto(url);
  if (button) {
    const [answered] = await Promise.all([
      page.waitForNavigation(),
      page.click(`button:text-is("${button}")`),
    ]);
    result.post_status = answered.status();
    result.after = (await page.textContent('body')).trim();
    if (second) {
      const [replayed] = await Promise.all([
        second.waitForNavigation(),
        second.click(`button:text-is("${button}")`),
      ]);
      result.again_status = replayed.status();
      result.again_text = (await second.textContent('body')).trim();
      const reopened = await second.goto(url);
      result.reopen_status = reopened.status();
      result.reopen_text = (await second.textContent('body')).trim();
    }
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
