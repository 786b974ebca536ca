// Runs WebAuthn ceremonies in headless Debian chromium with a CDP virtual authenticator
// (ctap2, internal, resident keys, user verification) and prints what happened as one
// JSON line on stdout.
//
//   node webauthn.mjs <scenario.json>
//
// The scenario: {"credentials": [...], "steps": [...]}. `credentials` (as a previous run
// printed them) are loaded into the authenticator first, so a credential registered in
// one run signs in the next. Each step is one of
//   {"page": url, "click": text}  open a page, press the button, wait for the page the
//                                 form posts to: {status, text, csp, error}
//   {"get": url, "options": o}    open url and run navigator.credentials.get with the
//                                 request options o ({"publicKey": …}): {credential}
//   {"elsewhere": o}              the same from a page on another origin
//                                 (http://localhost:<another port>)
//   {"foreign": url, "options": o} the same with a credential the authenticator makes up
//                                 for the relying party, one the server never registered
//   {"create": url, "options": o} open url and run navigator.credentials.create with the
//                                 creation options o: {credential}, as the browser's
//                                 own PublicKeyCredential.toJSON() gives it
// A "get" step with "to_json": true returns the browser's toJSON() as well.
// The output: {"steps": [...], "credentials": [...]} (credentials with their private
// keys and counters, for the next run).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const scenario = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const elsewhere = createServer((_, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>elsewhere</title><p>another origin</p>');
});
await new Promise((ok) => elsewhere.listen(0, '127.0.0.1', ok));
const elsewhereUrl = `http://localhost:${elsewhere.address().port}/`;

// Runs in the page: the ceremony with base64url options, the credential as JSON.
async function get({ options, allow, toJson }) {
  const enc = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const dec = (s) => Uint8Array.from(
    atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)),
    (c) => c.charCodeAt(0));
  const o = Object.assign({}, options.publicKey);
  o.challenge = dec(o.challenge);
  const list = allow ? [{ type: 'public-key', id: allow }] : (o.allowCredentials || []);
  o.allowCredentials = list.map((c) => Object.assign({}, c, { id: dec(c.id) }));
  try {
    const c = await navigator.credentials.get({ publicKey: o });
    if (toJson) return { credential: c.toJSON() };
    return { credential: { id: c.id, rawId: enc(c.rawId), type: c.type,
      response: { clientDataJSON: enc(c.response.clientDataJSON),
        authenticatorData: enc(c.response.authenticatorData),
        signature: enc(c.response.signature),
        userHandle: c.response.userHandle ? enc(c.response.userHandle) : null },
      clientExtensionResults: c.getClientExtensionResults() } };
  } catch (e) {
    return { error: e.name };
  }
}

// Runs in the page: registration with base64url options, the browser's own JSON.
async function create({ options }) {
  const dec = (s) => Uint8Array.from(
    atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)),
    (c) => c.charCodeAt(0));
  const o = Object.assign({}, options.publicKey);
  o.challenge = dec(o.challenge);
  o.user = Object.assign({}, o.user, { id: dec(o.user.id) });
  o.excludeCredentials = (o.excludeCredentials || [])
    .map((c) => Object.assign({}, c, { id: dec(c.id) }));
  try {
    const c = await navigator.credentials.create({ publicKey: o });
    return { credential: c.toJSON() };
  } catch (e) {
    return { error: e.name };
  }
}

const result = { steps: [] };
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const console_ = [];
  page.on('console', (m) => console_.push(m.text()));
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true },
  });
  for (const credential of scenario.credentials || []) {
    await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
  }
  for (const step of scenario.steps) {
    if (step.page) {
      const shown = await page.goto(step.page);
      const out = { get_status: shown.status(),
        csp: shown.headers()['content-security-policy'] || null,
        shown: (await page.textContent('body')).trim() };
      try {
        const [posted] = await Promise.all([
          page.waitForNavigation({ timeout: 15000 }),
          page.click(`button:text-is("${step.click}")`),
        ]);
        out.status = posted.status();
        out.text = (await page.textContent('body')).trim();
      } catch (e) {
        out.error = String(e);
        out.text = (await page.textContent('body')).trim();
      }
      result.steps.push(out);
    } else if (step.get || step.foreign) {
      await page.goto(step.get || step.foreign);
      let allow = null;
      if (step.foreign) {
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const id = randomBytes(32);
        await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: {
          credentialId: id.toString('base64'), isResidentCredential: false,
          rpId: step.options.publicKey.rpId,
          privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
          signCount: 0 } });
        allow = id.toString('base64url');
      }
      result.steps.push(await page.evaluate(get, { options: step.options, allow,
        toJson: !!step.to_json })
        .catch((e) => ({ error: String(e) })));
    } else if (step.create) {
      await page.goto(step.create);
      result.steps.push(await page.evaluate(create, { options: step.options })
        .catch((e) => ({ error: String(e) })));
    } else if (step.elsewhere) {
      await page.goto(elsewhereUrl);
      result.steps.push(await page.evaluate(get, { options: step.elsewhere, allow: null })
        .catch((e) => ({ error: String(e) })));
    }
  }
  result.console = console_;
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  result.credentials = credentials;
} finally {
  await browser.close();
  elsewhere.close();
}
console.log(JSON.stringify(result));
