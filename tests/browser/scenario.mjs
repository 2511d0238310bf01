// The HTTPS proxy as a real browser meets it: headless Chromium driven by playwright-core.
// tests/e2e/browser_test.cc runs it inside the daemon's network namespace, once per phase, and
// asserts on what it prints. It only observes (final URLs, statuses, page text, cookies, what the
// app saw); the judging is the C++ test's, so a failure shows the whole picture.
//
// Usage: node scenario.mjs JSON, where JSON is
//   {"phase": "private" | "public", "chromium": PATH, "home": DIR (its .pki/nssdb trusts the
//    daemon's CA), "apex": URL, "app": URL, "missing": URL (a VM host no VM has),
//    "links": {"owner", "shared", "linked", "unshared"} (login links), "share_link": URL}
// Prints one JSON object on stdout.
import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2]);

// Where a navigation ends: the final URL after redirects, its status and the page's text.
async function visit(page, url) {
  const response = await page.goto(url);
  return {
    url: page.url(),
    status: response ? response.status() : 0,
    text: (await page.innerText('body')).trim(),
  };
}

// The request headers the test app saw (web_upstream's /headers), and where the browser ended.
async function appHeaders(page) {
  const response = await page.goto(`${input.app}/headers`);
  const body = response ? await response.text() : '';
  let headers = null;
  try {
    headers = JSON.parse(body);
  } catch {
    // Not the app's JSON (a login or error page): reported as null beside the page itself.
  }
  return { url: page.url(), status: response ? response.status() : 0, body, headers };
}

// A WebSocket opened by the page's own script, through the proxy to the app's echo endpoint.
async function webSocketEcho(page, message) {
  return page.evaluate(
    (args) =>
      new Promise((resolve) => {
        const ws = new WebSocket(args.url);
        ws.onopen = () => ws.send(args.message);
        ws.onmessage = (event) => {
          resolve({ echoed: event.data });
          ws.close();
        };
        ws.onerror = () => resolve({ error: 'websocket error' });
      }),
    { url: `${input.app.replace(/^https:/, 'wss:')}/ws`, message },
  );
}

function cookieFacts(cookies) {
  return cookies.map((c) => ({
    name: c.name,
    domain: c.domain,
    path: c.path,
    httpOnly: c.httpOnly,
    secure: c.secure,
    sameSite: c.sameSite,
  }));
}

// A fresh browser profile (no cookies) with one tab.
async function newUser(browser, options = {}) {
  const context = await browser.newContext(options);
  return { context, page: await context.newPage() };
}

async function privatePhase(browser) {
  const out = {};
  const anonymous = await newUser(browser);
  out.anonymous = {
    app: await visit(anonymous.page, `${input.app}/`),
    missing: await visit(anonymous.page, `${input.missing}/`),
  };

  // The owner, whose browser also tries to pass itself off as someone else to the app.
  const owner = await newUser(browser, {
    extraHTTPHeaders: { 'X-Vmctl-User-Id': 'mallory', 'X-Vmctl-Email': 'mallory@example.com' },
  });
  out.owner = { login: await visit(owner.page, input.links.owner) };
  out.owner.app = await appHeaders(owner.page);
  out.owner.websocket = await webSocketEcho(owner.page, 'hello through the proxy');
  out.owner.cookies = cookieFacts(await owner.context.cookies());
  out.owner.replayed_link = await visit(owner.page, input.links.owner);
  await visit(owner.page, `${input.apex}/`);
  // The page the form's answer leads to, whatever it is, is what the test judges.
  const [logout] = await Promise.all([
    owner.page.waitForResponse((r) => r.request().method() === 'POST'),
    owner.page.waitForEvent('load'),
    owner.page.click('text=Sign out'),
  ]);
  out.owner.after_logout = {
    button: { url: logout.url(), status: logout.status() },
    apex: { url: owner.page.url(), text: await owner.page.innerText('body') },
    app: await visit(owner.page, `${input.app}/`),
  };

  const shared = await newUser(browser);
  await visit(shared.page, input.links.shared);
  out.shared = { app: await appHeaders(shared.page) };

  const linked = await newUser(browser);
  await visit(linked.page, input.links.linked);
  out.linked = { share_link: await visit(linked.page, input.share_link) };
  out.linked.app = await appHeaders(linked.page);

  const unshared = await newUser(browser);
  await visit(unshared.page, input.links.unshared);
  out.unshared = {
    app: await visit(unshared.page, `${input.app}/`),
    missing: await visit(unshared.page, `${input.missing}/`),
  };
  return out;
}

async function publicPhase(browser) {
  const anonymous = await newUser(browser);
  return {
    anonymous: {
      app: await visit(anonymous.page, `${input.app}/`),
      headers: await appHeaders(anonymous.page),
    },
  };
}

// Chromium reads the user's NSS database under $HOME: the daemon's CA is trusted for real, no
// certificate errors are ignored.
const browser = await chromium.launch({
  executablePath: input.chromium,
  env: { ...process.env, HOME: input.home },
});
try {
  const phases = { private: privatePhase, public: publicPhase };
  const result = await phases[input.phase](browser);
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await browser.close();
}
