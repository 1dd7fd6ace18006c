/*
 * panel.test.mjs - the admin panel in a real browser: Debian's chromium (/usr/bin/chromium,
 * never a downloaded one) driven by playwright-core, headless, walking the seed's story.
 *
 * Run: node --test tests/browser/   (from the repository root; npm install in tests/browser
 * first). Env: MAILOUT_BIN (default build/src/cli/mailout), MAILOUT_BROWSER_ARTIFACTS
 * (default build/browser-artifacts: one screenshot per step), CHROMIUM (default
 * /usr/bin/chromium), MAILOUT_BROWSER_KEEP=1 keeps the run folder.
 *
 * The servers: stack.py starts the Gmail-like SMTP server of the integration tests and
 * `mailout serve --http 127.0.0.1:PORT` on a fresh data folder whose only account is a
 * placeholder that carries the run's CA file (the form does not show a CA file; what the
 * form does not show comes from the stored account).
 *
 * Each step says what the server does, what we do in the browser, and what must be seen.
 * The steps share one browser page and run in order; a failed step stops the rest.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const ART = path.resolve(process.env.MAILOUT_BROWSER_ARTIFACTS || path.join(ROOT, "build", "browser-artifacts"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ADMIN_PASSWORD = "correct horse 42";
const NEW_ADMIN_PASSWORD = "battery staple 7 horses"; /* set in the panel's Admin password view */
const TEST_SUBJECT = "mailout: your mail settings work \u2713";
const EVIL_SUBJECT = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\"> & \"quotes\"";

let stack;       /* the READY info of stack.py */
let stackProc;
let browser;
let page;
const consoleProblems = [];
const dialogs = [];

/* ---- helpers ------------------------------------------------------------------------------ */

function startStack() {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    if (!env.MAILOUT_BIN) env.MAILOUT_BIN = path.join(ROOT, "build", "src", "cli", "mailout");
    const child = spawn("/usr/bin/python3", [path.join(HERE, "stack.py")],
                        { cwd: ROOT, env, stdio: ["pipe", "pipe", "inherit"] });
    stackProc = child;
    const rl = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error("stack.py: no READY line after 60 s")), 60000);
    rl.on("line", (line) => {
      if (line.startsWith("READY ")) {
        clearTimeout(timer);
        resolve(JSON.parse(line.slice(6)));
      } else {
        process.stderr.write("stack: " + line + "\n");
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error("stack.py exited early (" + code + ")"));
    });
  });
}

function stopStack() {
  return new Promise((resolve) => {
    if (!stackProc || stackProc.exitCode !== null) return resolve();
    const t = setTimeout(() => { stackProc.kill("SIGKILL"); resolve(); }, 15000);
    stackProc.on("exit", () => { clearTimeout(t); resolve(); });
    stackProc.stdin.end();
  });
}

async function shot(name) {
  await page.screenshot({ path: path.join(ART, name + ".png"), fullPage: true });
}

/* One HTTP request outside the browser. opts: {method, path, headers, body, localAddress}. */
function request(opts) {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? null
      : typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    const headers = { ...(opts.headers || {}) };
    if (body !== null && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
    const req = http.request({ host: "127.0.0.1", port: stack.http_port, method: opts.method || "GET",
                               path: opts.path, headers, localAddress: opts.localAddress },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (c) => { data += c; });
        res.on("end", () => {
          let json = null;
          try { json = JSON.parse(data); } catch (e) { /* not JSON */ }
          resolve({ status: res.statusCode, headers: res.headers, json, text: data });
        });
      });
    req.on("error", reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

/* The browser's session cookie, as a Cookie header. */
async function cookieHeader() {
  const cookies = await page.context().cookies();
  return cookies.map((c) => c.name + "=" + c.value).join("; ");
}

/* The panel's JSON API from inside the page (same origin, the page's cookie). */
function pageFetch(method, p, headers, body) {
  return page.evaluate(async ([m, u, h, b]) => {
    const r = await fetch(u, { method: m, credentials: "same-origin", headers: h,
                               body: b === null ? undefined : b });
    return { status: r.status, json: await r.json().catch(() => null) };
  }, [method, p, headers || {}, body === undefined ? null : body]);
}

function storedLetters() {
  const dir = stack.gmail.store;
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort().map((f) => {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
    meta.raw = fs.readFileSync(path.join(dir, f.replace(/\.json$/, ".eml")), "utf8");
    return meta;
  });
}

async function fieldError(field) {
  return {
    invalid: await page.getAttribute("#f-" + field, "aria-invalid"),
    describedby: (await page.getAttribute("#f-" + field, "aria-describedby")) || "",
    text: (await page.locator("#e-" + field).isVisible()) ? await page.textContent("#e-" + field) : ""
  };
}

/* ---- set up and tear down -------------------------------------------------------------------- */

before(async () => {
  fs.mkdirSync(ART, { recursive: true });
  stack = await startStack();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    /* playwright gives every launch a fresh, temporary profile (user data dir) */
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text()))
      consoleProblems.push(m.text());
  });
  page.on("pageerror", (e) => consoleProblems.push("page error: " + e.message));
  page.on("dialog", async (d) => {
    dialogs.push(d.type() + ": " + d.message());
    await d.accept();
  });
});

after(async () => {
  if (browser) await browser.close();
  await stopStack();
});

/* ---- the story ---------------------------------------------------------------------------------- */

test("first start: only this machine may create the admin password", async () => {
  /* Server: no admin password yet. We: POST /panel/setup naming another host (what a page
   * elsewhere would do through DNS rebinding), then open the printed address.
   * Must see: 403; the address leads to the setup page. */
  const r = await request({ method: "POST", path: "/panel/setup", body: { password: "x".repeat(12) },
                            headers: { Host: "attacker.example:8025" } });
  assert.equal(r.status, 403, r.text);
  await page.goto(stack.base_url + "/");
  assert.match(page.url(), /\/setup$/);
  await shot("01-setup");
  await page.fill("#g-password", ADMIN_PASSWORD);
  await page.fill("#g-password2", ADMIN_PASSWORD + " typo");
  await page.click("button[type=submit]");
  await page.locator("#gate-error").waitFor();
  assert.match(await page.textContent("#gate-error"), /differ/);
  await page.fill("#g-password2", ADMIN_PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/panel\/$/);
  await page.locator("#d-sent").filter({ hasText: /^\d+$/ }).waitFor();
});

test("log out, a wrong password is refused, the right one logs in", async () => {
  await page.click("#logout");
  await page.waitForURL(/\/login$/);
  await shot("02-login");
  await page.fill("#g-password", "not the password");
  await page.click("button[type=submit]");
  await page.locator("#gate-error").waitFor();
  assert.match(await page.textContent("#gate-error"), /not the admin password/);
  assert.equal(await page.getAttribute("#g-password", "aria-invalid"), "true");
  await shot("03-login-wrong-password");
  await page.fill("#g-password", ADMIN_PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/panel\/$/);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "mo_session");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.ok(session.expires > Date.now() / 1000, "the cookie expires");
});

test("Configuration -> System -> General: pick Gmail", async () => {
  /* We: open Configuration, search "gmail", choose Gmail.
   * Must see: the breadcrumb and the Mail (SMTP) section; host, port and security filled
   * with Gmail's; the app-password steps with Google's link; the stored account's password
   * shown only as saved. */
  await page.click("nav.mainnav >> text=Configuration");
  await page.locator("#acc-body tr").first().waitFor();
  assert.equal((await page.textContent(".crumbs")).replace(/\s+/g, " ").trim(), "ConfigurationSystemGeneral");
  assert.equal(await page.textContent("#cfg-h"), "Mail (SMTP)");
  assert.equal(await page.inputValue("#f-password"), "", "the password is never shown");
  assert.match(await page.textContent("#h-password"), /A password is saved/);
  await page.fill("#f-provider-search", "gmail");
  const options = await page.$$eval("#f-provider option", (os) => os.map((o) => o.value));
  assert.ok(options.includes("gmail") && options.length < 10, options.join(","));
  await page.selectOption("#f-provider", "gmail");
  assert.equal(await page.inputValue("#f-host"), "smtp.gmail.com");
  assert.equal(await page.inputValue("#f-port"), "587");
  assert.equal(await page.inputValue("#f-security"), "starttls");
  assert.ok(await page.isVisible("#provider-help"));
  assert.ok(await page.isVisible("#provider-help a[href='https://myaccount.google.com/apppasswords']"));
  await shot("04-gmail-picked");
});

test("fill the form as the seed does (dots, digits-only password) and save", async () => {
  /* Server: validation on save. We: email with dots, the user name as the part before @,
   * a password of digits only, the sender; then point Host/Port at the local Gmail-like
   * server (STARTTLS) and press Save.
   * Must see: "Saved"; notes (e.g. the login becomes the full address); the password
   * field empty again, the password saved; nothing red. */
  await page.fill("#f-email", stack.story.email);
  await page.fill("#f-username", stack.story.email.split("@")[0]);
  await page.fill("#f-password", stack.story.password);
  await page.fill("#f-sender", stack.story.email);
  await page.fill("#f-sender_name", "Test Shop");
  await page.fill("#f-host", "localhost");
  await page.fill("#f-port", String(stack.gmail.starttls));
  await page.selectOption("#f-security", "starttls");
  await page.click("#btn-save");
  await page.locator("#flash", { hasText: "Saved" }).waitFor();
  assert.equal(await page.locator("[aria-invalid=true]").count(), 0);
  assert.equal(await page.inputValue("#f-password"), "");
  assert.match(await page.textContent("#h-password"), /A password is saved/);
  assert.equal(await page.inputValue("#f-username"), stack.story.email, "Gmail logs in with the full address");
  assert.match(await page.textContent("#form-notes"), /full address/);
  await shot("05-saved");
  const r = await pageFetch("GET", "/panel/api/accounts/default");
  assert.equal(r.status, 200);
  assert.equal(r.json.account.email, stack.story.email, "the dots stay");
  assert.equal(r.json.account.provider, "gmail");
  assert.equal(r.json.account.ca_file, stack.ca_file, "the CA file set from the command line is kept");
});

test("the green button sends the confirmation letter", async () => {
  /* Server: Gmail-like, accepts digits.only@gmail.com with the app password 123456.
   * We: press "Send test email" (the password field is empty: the saved one is used).
   * Must see: the steps with durations, "Sent - check your inbox"; the server got the
   * letter from digits.only@gmail.com, logged in as that address over TLS. */
  const before = storedLetters().length;
  await page.click("#btn-test");
  await page.locator("#outcome", { hasText: "Sent \u2014 check your inbox" }).waitFor();
  const steps = await page.$$eval("#steps li", (ls) => ls.map((l) => l.textContent));
  for (const want of ["Connect \u2713", "TLS \u2713", "Login \u2713", "Send \u2713"])
    assert.ok(steps.some((s) => s.startsWith(want)), want + " in " + steps.join(" | "));
  assert.ok(steps.every((s) => / \d+ ms/.test(s)), "durations: " + steps.join(" | "));
  assert.ok(await page.isVisible("#transcript-box"));
  await shot("06-test-email-sent");
  const letters = storedLetters();
  assert.equal(letters.length, before + 1);
  const got = letters[letters.length - 1];
  assert.equal(got.auth_user, stack.story.email);
  assert.equal(got.tls, true);
  assert.deepEqual(got.rcpt_tos, [stack.story.email]);
  assert.match(got.raw, /Subject: =\?UTF-8\?|Subject: mailout/);
});

test("the steps show as they pass, before the result", async () => {
  /* Server: a TCP server of this test that accepts the connection and holds the greeting
   * until the test lets it go, then answers "554 5.3.2 closed for the test" and hangs up.
   * We: point the form (not saved) at it and press "Check connection".
   * Must see: "Connect \u2713" with its duration while the check still waits for the
   * greeting (no outcome yet, the running line still there); after the release, the
   * diagnosis, with Connect still listed and Greeting failed. Then the form goes back. */
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  const sockets = [];
  const server = net.createServer((sock) => {
    sockets.push(sock);
    sock.on("error", () => {});
    released.then(() => sock.end("554 5.3.2 closed for the test\r\n"));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const saved = { host: await page.inputValue("#f-host"), port: await page.inputValue("#f-port"),
                  security: await page.inputValue("#f-security") };
  try {
    await page.fill("#f-host", "127.0.0.1");
    await page.fill("#f-port", String(server.address().port));
    await page.selectOption("#f-security", "starttls");
    const started = page.waitForResponse((r) => r.url().endsWith("/check") && r.request().method() === "POST");
    await page.click("#btn-check");
    const start = await started;
    assert.equal(start.status(), 202);
    const id = (await start.json()).check_id;
    assert.match(id, /^[0-9a-f]{32}$/);
    await page.locator("#steps li.ok", { hasText: "Connect \u2713" }).waitFor();
    const early = await page.$$eval("#steps li", (ls) => ls.map((l) => l.textContent));
    assert.equal(sockets.length, 1, "the server holds one connection");
    assert.equal(await page.locator("#outcome > *").count(), 0, "no result yet: " + early.join(" | "));
    assert.ok(early.some((s) => /^Connect \u2713 \d+ ms/.test(s)), early.join(" | "));
    assert.ok(await page.isVisible("#steps li.run"), "the running line stays: " + early.join(" | "));
    await shot("06b-steps-as-they-pass");
    release();
    await page.locator("#outcome .diag").waitFor();
    const steps = await page.$$eval("#steps li", (ls) => ls.map((l) => l.textContent));
    assert.ok(steps.some((s) => s.startsWith("Connect \u2713")), steps.join(" | "));
    assert.ok(steps.some((s) => s.includes("\u2717")), "a failed step: " + steps.join(" | "));
    assert.equal(await page.locator("#steps li.run").count(), 0);
    /* the check is kept for its session only: this one sees it, another gets 404 */
    const mine = await pageFetch("GET", "/panel/api/checks/" + id);
    assert.equal(mine.status, 200);
    assert.equal(mine.json.done, true);
    assert.equal(mine.json.result.ok, false);
    assert.deepEqual(mine.json.steps, mine.json.result.steps);
    const login = await request({ method: "POST", path: "/panel/login", body: { password: ADMIN_PASSWORD } });
    assert.equal(login.status, 200);
    const other = login.headers["set-cookie"][0].split(";")[0];
    assert.equal((await request({ path: "/panel/api/checks/" + id, headers: { Cookie: other } })).status, 404);
    assert.equal((await request({ path: "/panel/api/checks/" + id })).status, 401);
    assert.equal((await pageFetch("GET", "/panel/api/checks/" + "0".repeat(32))).status, 404);
  } finally {
    release();
    await new Promise((resolve) => server.close(resolve));
    await page.fill("#f-host", saved.host);
    await page.fill("#f-port", saved.port);
    await page.selectOption("#f-security", saved.security);
  }
});

test("a normal password where an app password is needed: Password turns red with the fix", async () => {
  /* Server: Gmail-like answers the account's normal password with "534-5.7.9
   * Application-specific password required". We: type the normal password (not saved)
   * and press the green button.
   * Must see: Password outlined red (aria-invalid) with the reason and the app-password
   * fix under it (aria-describedby), the diagnosis box; the transcript hides the password. */
  await page.fill("#f-password", stack.story.normal_password);
  await page.click("#btn-test");
  await page.locator("#f-password[aria-invalid=true]").waitFor();
  const e = await fieldError("password");
  assert.match(e.text, /App Password/i);
  assert.match(e.text, /myaccount\.google\.com\/apppasswords/);
  assert.ok(e.describedby.split(" ").includes("e-password"), e.describedby);
  assert.equal(await page.locator("[aria-invalid=true]").count(), 1, "only Password is red");
  assert.match(await page.textContent("#outcome"), /534/);
  await page.click("#transcript-box summary");
  const transcript = await page.textContent("#transcript");
  assert.ok(transcript.includes("AUTH"), transcript.slice(0, 400));
  assert.ok(!transcript.includes(stack.story.normal_password), "the password is redacted");
  assert.ok(!transcript.includes(Buffer.from("\0" + stack.story.email + "\0" + stack.story.normal_password).toString("base64")));
  await shot("07-app-password-needed");
});

test("port and security swapped: Security turns red", async () => {
  /* Server: the Gmail-like STARTTLS port greets in clear. We: clear the password (the
   * saved one is used), choose SSL/TLS on that port, press "Check connection".
   * Must see: Security red with "STARTTLS" in its fix; Password no longer red. */
  await page.fill("#f-password", "");
  await page.selectOption("#f-security", "tls");
  await page.click("#btn-check");
  await page.locator("#f-security[aria-invalid=true]").waitFor();
  const e = await fieldError("security");
  assert.match(e.text, /STARTTLS/);
  assert.equal(await page.getAttribute("#f-password", "aria-invalid"), null);
  await shot("08-port-security-swapped");
});

test("save shows every faulty field at once and keeps what was typed", async () => {
  /* We: a broken email and an impossible port, then Save.
   * Must see: both fields red at once, a summary, the typed values still there. Then the
   * right values save again. */
  await page.fill("#f-email", "not an address");
  await page.fill("#f-port", "99999");
  await page.click("#btn-save");
  await page.locator("#form-summary").waitFor();
  assert.equal(await page.getAttribute("#f-email", "aria-invalid"), "true");
  assert.equal(await page.getAttribute("#f-port", "aria-invalid"), "true");
  assert.equal(await page.inputValue("#f-email"), "not an address");
  assert.equal(await page.inputValue("#f-port"), "99999");
  assert.ok((await page.textContent("#e-port")).length > 10);
  await shot("09-save-errors-all-at-once");
  await page.fill("#f-email", stack.story.email);
  await page.fill("#f-port", String(stack.gmail.starttls));
  await page.selectOption("#f-security", "starttls");
  await page.click("#btn-save");
  await page.locator("#flash", { hasText: "Saved" }).waitFor();
  assert.equal(await page.locator("[aria-invalid=true]").count(), 0);
});

test("the mail log shows the test letter", async () => {
  await page.click("nav.mainnav >> text=Mail log");
  const row = page.locator("#log-body tr", { hasText: TEST_SUBJECT }).filter({ hasText: "Sent" }).first();
  await row.waitFor();
  assert.match(await row.textContent(), /test letter/);
  assert.match(await row.textContent(), /Sent/);
  await shot("10-log-with-test-letter");
  await row.locator("a").click();
  await page.locator("#msg-h", { hasText: TEST_SUBJECT }).waitFor();
  assert.match(await page.textContent("#msg-body"), /Login \u2713/);
  await shot("11-test-letter-page");
});

test("API keys: create one (shown once); a <script> subject shows as text", async () => {
  /* We: create an API key in the panel, queue a message through the API whose subject is
   * HTML, let the worker deliver it to the Gmail-like server, open the log and the message.
   * Must see: the subject as the very characters, nothing run (no dialog, no global set). */
  await page.click("nav.mainnav >> text=API keys");
  await page.fill("#key-name", "shop");
  await page.click("#key-form button[type=submit]");
  await page.locator("#key-new").waitFor();
  const key = await page.inputValue("#key-value");
  assert.match(key, /^mo_[A-Za-z0-9_-]{43}$/);
  await page.locator("#key-body tr", { hasText: "shop" }).waitFor();
  await shot("12-api-key-created");
  const r = await request({ method: "POST", path: "/api/v1/messages", headers: { Authorization: "Bearer " + key },
                            body: { to: ["customer@example.org"], subject: EVIL_SUBJECT,
                                    text: "Body <b>not bold</b>\nsecond line" } });
  assert.equal(r.status, 202, r.text);
  /* wait for the worker to deliver it */
  for (let i = 0; i < 100; i++) {
    const s = await request({ path: "/api/v1/messages/" + r.json.id, headers: { Authorization: "Bearer " + key } });
    if (s.json && s.json.state === "sent") break;
    await new Promise((res) => setTimeout(res, 200));
  }
  await page.goto(stack.base_url + "/panel/#/log?q=" + encodeURIComponent("script"));
  /* the hash change reloads the list: wait for the search's rows, not the old ones */
  const link = page.locator("#log-body td.subject a", { hasText: "window.__xss" }).first();
  await link.waitFor();
  assert.equal(await page.locator("#log-body tr").count(), 1, "the search finds that message only");
  assert.equal(await link.textContent(), EVIL_SUBJECT);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await shot("13-log-script-subject-as-text");
  await link.click();
  await page.locator("#msg-h").filter({ hasText: "<script>" }).waitFor();
  assert.equal(await page.textContent("#msg-h"), EVIL_SUBJECT);
  assert.match(await page.textContent("#msg-body pre.body"), /Body <b>not bold<\/b>/);
  await page.locator("#msg-body .attempt").first().waitFor();
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(dialogs.filter((d) => d.startsWith("alert")), []);
  await shot("14-message-page");
});

test("a request without the CSRF token is refused", async () => {
  /* We: from the logged-in page, DELETE the account without X-CSRF-Token, with a wrong one;
   * from outside, POST with the cookie but no token, and with a foreign Origin.
   * Must see: 403 each time; the account still there. */
  let r = await pageFetch("DELETE", "/panel/api/accounts/default");
  assert.equal(r.status, 403);
  r = await pageFetch("DELETE", "/panel/api/accounts/default", { "X-CSRF-Token": "A".repeat(43) });
  assert.equal(r.status, 403);
  const cookie = await cookieHeader();
  r = await request({ method: "POST", path: "/panel/api/keys", headers: { Cookie: cookie }, body: { name: "evil" } });
  assert.equal(r.status, 403, r.text);
  const session = await pageFetch("GET", "/panel/api/session");
  r = await request({ method: "POST", path: "/panel/api/keys", body: { name: "evil2" },
                      headers: { Cookie: cookie, "X-CSRF-Token": session.json.csrf, Origin: "http://attacker.example" } });
  assert.equal(r.status, 403, r.text);
  r = await request({ method: "POST", path: "/panel/api/keys", body: "name=evil3",
                      headers: { Cookie: cookie, "X-CSRF-Token": session.json.csrf,
                                 "Content-Type": "application/x-www-form-urlencoded" } });
  assert.equal(r.status, 415, r.text);
  r = await pageFetch("GET", "/panel/api/accounts/default");
  assert.equal(r.status, 200);
  const keys = await pageFetch("GET", "/panel/api/keys");
  assert.deepEqual(keys.json.keys.map((k) => k.name), ["shop"]);
});

test("a paused account shows on the dashboard with why, and \"Check it again\" resumes it", async () => {
  /* Server: Gmail-like refuses the normal password (534 5.7.9). We: save the normal
   * password, queue a message through the API, let the worker's breaker pause the account;
   * press "Check it again" (still failing), save the right password, press it again.
   * Must see: the pause with Google's reply on the dashboard; then it is gone. */
  await page.goto(stack.base_url + "/panel/#/config/default");
  await page.waitForFunction(() => document.getElementById("f-email").value !== "");
  await page.fill("#f-password", stack.story.normal_password);
  await page.click("#btn-save");
  await page.locator("#flash", { hasText: "Saved" }).waitFor();
  const keys = await request({ method: "POST", path: "/panel/api/keys", body: { name: "pause-test" },
                               headers: { Cookie: await cookieHeader(),
                                          "X-CSRF-Token": (await pageFetch("GET", "/panel/api/session")).json.csrf } });
  assert.equal(keys.status, 201, keys.text);
  const q = await request({ method: "POST", path: "/api/v1/messages", headers: { Authorization: "Bearer " + keys.json.key },
                            body: { to: ["someone@example.org"], subject: "Waits for the pause", text: "x" } });
  assert.equal(q.status, 202, q.text);
  let paused = [];
  for (let i = 0; i < 150 && paused.length === 0; i++) {
    await new Promise((res) => setTimeout(res, 200));
    paused = (await pageFetch("GET", "/panel/api/dashboard")).json.paused;
  }
  assert.equal(paused.length, 1, "the breaker paused the account");
  assert.match(paused[0].reason, /534|5\.7\.9|Application-specific/);
  await page.goto(stack.base_url + "/panel/#/log");
  const box = page.locator("#d-paused .alert");
  await box.waitFor();
  assert.match(await box.textContent(), /default.*paused/);
  await shot("15-dashboard-paused-account");
  await box.locator("button").click();
  await page.locator("#flash", { hasText: "Still failing" }).waitFor();
  await page.goto(stack.base_url + "/panel/#/config/default");
  await page.waitForFunction(() => document.getElementById("f-email").value !== "");
  await page.fill("#f-password", stack.story.password);
  await page.click("#btn-save");
  await page.locator("#flash", { hasText: "Saved" }).waitFor();
  await page.locator("#d-paused .alert button").click();
  await page.locator("#flash", { hasText: "works again" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#d-paused .alert").length === 0);
  assert.deepEqual((await pageFetch("GET", "/panel/api/dashboard")).json.paused, []);
});

test("every field has a label, and the keyboard alone sends the test email", async () => {
  await page.goto(stack.base_url + "/panel/#/config/default");
  await page.waitForFunction(() => document.getElementById("f-email").value !== "");
  const unlabeled = await page.$$eval("input, select", (els) => els
    .filter((e) => e.type !== "hidden" && e.labels.length === 0 && !e.getAttribute("aria-label"))
    .map((e) => e.id || e.name));
  assert.deepEqual(unlabeled, []);
  await page.focus("#f-email");
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement && document.activeElement.id === "btn-test");
  }
  assert.ok(reached, "Tab reaches the green button");
  const focusStyle = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(focusStyle, "none", "the focus is visible");
  await page.keyboard.press("Enter");
  await page.locator("#outcome", { hasText: "Sent \u2014 check your inbox" }).waitFor();
});

test("usable at phone width (375 px)", async () => {
  await page.setViewportSize({ width: 375, height: 812 });
  for (const [hash, name] of [["#/config/default", "16-phone-configuration"], ["#/log", "17-phone-mail-log"],
                              ["#/keys", "18-phone-api-keys"], ["#/password", "18b-phone-admin-password"]]) {
    await page.goto(stack.base_url + "/panel/" + hash);
    await page.waitForLoadState("networkidle");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    const wide = await page.evaluate(() => Array.from(document.querySelectorAll("body *"))
      .filter((e) => e.getBoundingClientRect().right > 376)
      .map((e) => e.tagName + "#" + e.id + "." + e.className).slice(0, 8).join(", "));
    assert.ok(overflow <= 376, name + ": the page is " + overflow + " px wide: " + wide);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
});

test("logged out: pages redirect to the login, JSON answers 401", async () => {
  const oldCookie = await cookieHeader();
  await page.goto(stack.base_url + "/panel/#/log");
  await page.click("#logout");
  await page.waitForURL(/\/login$/);
  await page.goto(stack.base_url + "/panel/#/config");
  assert.match(page.url(), /\/login(#.*)?$/);
  await shot("19-logged-out-redirect");
  const r = await pageFetch("GET", "/panel/api/dashboard");
  assert.equal(r.status, 401);
  const again = await request({ path: "/panel/api/accounts", headers: { Cookie: oldCookie } });
  assert.equal(again.status, 401, "the ended session stays ended");
  const pageAgain = await request({ path: "/panel/", headers: { Cookie: oldCookie } });
  assert.equal(pageAgain.status, 303);
  assert.equal(pageAgain.headers.location, "/login");
});

test("the admin password changes in the panel; the other sessions are signed out", async () => {
  /* Server: the admin password is ADMIN_PASSWORD; a second session is open elsewhere.
   * We: log in, open "Admin password" in the header; type two new passwords that differ,
   * then one too short, then a wrong current password; then the right one and Save; log
   * out, try the old password at the login, then the new one.
   * Must see: "New password again" red without a request; New password red with the
   * length rule; Current password red with why (403), nothing changed; after Save the note
   * that other browsers were signed out, the other session refused (401) while this page
   * goes on; the old password refused at the login, the new one accepted. */
  const other = await request({ method: "POST", path: "/panel/login", body: { password: ADMIN_PASSWORD } });
  assert.equal(other.status, 200, other.text);
  const otherCookie = other.headers["set-cookie"][0].split(";")[0];
  await page.goto(stack.base_url + "/login");
  await page.fill("#g-password", ADMIN_PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/panel\/$/);
  await page.click("#nav-password");
  await page.locator("#pw-form").waitFor();
  assert.equal(await page.getAttribute("#nav-password", "aria-current"), "page");
  assert.equal(await page.textContent("#pw-h"), "Admin password");
  await shot("20-admin-password-form");

  const posts = [];
  const onRequest = (req) => { if (req.url().endsWith("/panel/api/password")) posts.push(req.postData() || ""); };
  page.on("request", onRequest);
  try {
    await page.fill("#pw-current", ADMIN_PASSWORD);
    await page.fill("#pw-new", NEW_ADMIN_PASSWORD);
    await page.fill("#pw-new2", NEW_ADMIN_PASSWORD + " typo");
    await page.click("#pw-save");
    await page.locator("#pw-new2[aria-invalid=true]").waitFor();
    assert.match(await page.textContent("#e-pw-new2"), /differ/);
    assert.equal(posts.length, 0, "the page compares the two new passwords itself");

    await page.fill("#pw-new", "short");
    await page.fill("#pw-new2", "short");
    await page.click("#pw-save");
    await page.locator("#pw-new[aria-invalid=true]").waitFor();
    assert.match(await page.textContent("#e-pw-new"), /at least 8 characters/);
    assert.equal(await page.getAttribute("#pw-new2", "aria-invalid"), null);

    await page.fill("#pw-current", "not the password");
    await page.fill("#pw-new", NEW_ADMIN_PASSWORD);
    await page.fill("#pw-new2", NEW_ADMIN_PASSWORD);
    const wrong = page.waitForResponse((r) => r.url().endsWith("/panel/api/password"));
    await page.click("#pw-save");
    const wrongResp = await wrong;
    assert.equal(wrongResp.status(), 403);
    assert.ok(!(await wrongResp.text()).includes("not the password"), "the password is not echoed");
    await page.locator("#pw-current[aria-invalid=true]").waitFor();
    assert.match(await page.textContent("#e-pw-current"), /not the current admin password/);
    assert.ok((await page.getAttribute("#pw-current", "aria-describedby")).split(" ").includes("e-pw-current"));
    assert.equal(await page.locator("#pw-form [aria-invalid=true]").count(), 1, "only Current password is red");
    assert.equal(await page.locator("#pw-done").isVisible(), false);
    await shot("21-admin-password-wrong-current");
    assert.equal((await request({ path: "/panel/api/dashboard", headers: { Cookie: otherCookie } })).status, 200,
                 "nothing changed: the other session goes on");

    await page.fill("#pw-current", ADMIN_PASSWORD);
    await page.click("#pw-save");
    await page.locator("#pw-done").waitFor();
    assert.match(await page.textContent("#pw-done"), /other browser.*signed out/);
    assert.equal(await page.locator("#pw-form [aria-invalid=true]").count(), 0);
    assert.equal(await page.inputValue("#pw-current"), "", "the typed passwords leave the page");
    assert.equal(await page.inputValue("#pw-new"), "");
    await shot("22-admin-password-changed");
    assert.deepEqual(posts.map((b) => Object.keys(JSON.parse(b)).sort()), [["current", "new"], ["current", "new"], ["current", "new"]]);
  } finally {
    page.off("request", onRequest);
  }
  assert.equal((await request({ path: "/panel/api/dashboard", headers: { Cookie: otherCookie } })).status, 401,
               "the other session was signed out");
  assert.equal((await pageFetch("GET", "/panel/api/dashboard")).status, 200, "this one stays");

  await page.click("#logout");
  await page.waitForURL(/\/login$/);
  await page.fill("#g-password", ADMIN_PASSWORD);
  await page.click("button[type=submit]");
  await page.locator("#gate-error").waitFor();
  assert.match(await page.textContent("#gate-error"), /not the admin password/);
  await shot("23-login-old-password-refused");
  await page.fill("#g-password", NEW_ADMIN_PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/panel\/$/);
  await page.locator("#d-sent").filter({ hasText: /^\d+$/ }).waitFor();
});

test("wrong current passwords count against the login's rate limit", async () => {
  /* Server: the login's limit (5 failures a minute per address) guards the password form
   * too. We: from 127.0.0.3, log in; POST /panel/api/password without the CSRF token; then
   * six wrong current passwords with it; then a login from that address.
   * Must see: 403 for the missing token (the gate's, before any password is tried); 403
   * five times, then 429 with Retry-After on the field "current"; the login from that
   * address waits as well (429); the password unchanged. */
  const login = await request({ method: "POST", path: "/panel/login", body: { password: NEW_ADMIN_PASSWORD },
                                localAddress: "127.0.0.3" });
  assert.equal(login.status, 200, login.text);
  const cookie = login.headers["set-cookie"][0].split(";")[0];
  let r = await request({ method: "POST", path: "/panel/api/password", localAddress: "127.0.0.3",
                          headers: { Cookie: cookie }, body: { current: NEW_ADMIN_PASSWORD, new: "never set 12345" } });
  assert.equal(r.status, 403, r.text);
  assert.match(r.json.errors[0].message, /CSRF/);
  const statuses = [];
  for (let i = 0; i < 6; i++) {
    r = await request({ method: "POST", path: "/panel/api/password", localAddress: "127.0.0.3",
                        headers: { Cookie: cookie, "X-CSRF-Token": login.json.csrf },
                        body: { current: "wrong guess " + i, new: "never set 12345" } });
    statuses.push(r.status);
    assert.equal(r.json.errors[0].field, "current", r.text);
    assert.ok(!r.text.includes("wrong guess") && !r.text.includes("never set"), "no password echoed: " + r.text);
  }
  assert.deepEqual(statuses, [403, 403, 403, 403, 403, 429]);
  assert.ok(Number(r.headers["retry-after"]) > 0, JSON.stringify(r.headers));
  const again = await request({ method: "POST", path: "/panel/login", body: { password: NEW_ADMIN_PASSWORD },
                                localAddress: "127.0.0.3" });
  assert.equal(again.status, 429, "the login from that address waits too");
  const ok = await request({ method: "POST", path: "/panel/login", body: { password: NEW_ADMIN_PASSWORD } });
  assert.equal(ok.status, 200, "unchanged");
});

test("`mailout admin password` in the terminal replaces the password and ends every session", async () => {
  /* We: log in, then set a new password with the CLI (one line on standard input, as a
   * script would), and a too short one. Must see: exit 0 and the old session refused (401);
   * the old password refused, the new one accepted; exit 2 for the short one. */
  const { spawnSync } = await import("node:child_process");
  const login = await request({ method: "POST", path: "/panel/login", body: { password: NEW_ADMIN_PASSWORD } });
  assert.equal(login.status, 200);
  const cookie = login.headers["set-cookie"][0].split(";")[0];
  assert.equal((await request({ path: "/panel/api/dashboard", headers: { Cookie: cookie } })).status, 200);
  const set = spawnSync(stack.mailout_bin, ["--home", stack.home, "admin", "password"],
                        { input: "a brand new password\n", encoding: "utf8" });
  assert.equal(set.status, 0, set.stderr);
  assert.match(set.stdout, /changed/);
  assert.equal((await request({ path: "/panel/api/dashboard", headers: { Cookie: cookie } })).status, 401);
  assert.equal((await request({ method: "POST", path: "/panel/login", body: { password: NEW_ADMIN_PASSWORD } })).status, 401);
  assert.equal((await request({ method: "POST", path: "/panel/login", body: { password: "a brand new password" } })).status, 200);
  const short = spawnSync(stack.mailout_bin, ["--home", stack.home, "admin", "password"],
                          { input: "short\n", encoding: "utf8" });
  assert.equal(short.status, 2);
  assert.match(short.stderr, /at least 8 characters/);
});

test("login attempts are rate-limited per address", async () => {
  /* We: from 127.0.0.2, six wrong passwords. Must see: 401 five times, then 429 with
   * Retry-After; the right password from 127.0.0.1 still works. */
  const statuses = [];
  let last;
  for (let i = 0; i < 6; i++) {
    last = await request({ method: "POST", path: "/panel/login", body: { password: "wrong " + i },
                           localAddress: "127.0.0.2" });
    statuses.push(last.status);
  }
  assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
  assert.ok(Number(last.headers["retry-after"]) > 0, JSON.stringify(last.headers));
  const ok = await request({ method: "POST", path: "/panel/login", body: { password: "a brand new password" } });
  assert.equal(ok.status, 200);
  assert.match(ok.headers["set-cookie"][0], /HttpOnly; SameSite=Strict; Max-Age=\d+/);
});

test("security headers on pages, assets and JSON; no CSP violation on the way", async () => {
  for (const p of ["/login", "/assets/app.js", "/panel/api/dashboard"]) {
    const r = await request({ path: p });
    assert.match(r.headers["content-security-policy"], /default-src 'none'; script-src 'self'/, p);
    assert.equal(r.headers["x-frame-options"], "DENY", p);
    assert.equal(r.headers["x-content-type-options"], "nosniff", p);
    assert.equal(r.headers["referrer-policy"], "no-referrer", p);
  }
  assert.deepEqual(consoleProblems, []);
});
