/*
 * sandbox.test.mjs - the newcomer's path in a real browser (issue 6, the sandbox): a fresh
 * data folder, the README's first command (`mailout sandbox ensure-account`, then `mailout
 * serve`), the green button, the letter in the panel's Sandbox inbox; then the 534-5.7.9
 * fault switched on in the panel turns Password red with the app-password fix.
 *
 * Run: node --test tests/browser/   (Env as panel.test.mjs: MAILOUT_BIN, CHROMIUM,
 * MAILOUT_BROWSER_ARTIFACTS.) No Python stack: the only server is mailout itself, whose
 * sandbox receiver (STARTTLS with its own certificate, AUTH with its own password) is the
 * mail provider here.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const BIN = path.resolve(process.env.MAILOUT_BIN || path.join(ROOT, "build", "src", "cli", "mailout"));
const ART = path.resolve(process.env.MAILOUT_BROWSER_ARTIFACTS || path.join(ROOT, "build", "browser-artifacts"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ADMIN_PASSWORD = "correct horse 42";

let home;
let serve;
let serveLog = "";
let base;
let browser;
let page;
const consoleProblems = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}

async function waitForPort(port, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, "127.0.0.1", () => { c.end(); resolve(true); });
      c.on("error", () => resolve(false));
    });
    if (ok) return;
    if (serve.exitCode !== null) throw new Error("mailout serve exited: " + serveLog);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("mailout serve did not listen: " + serveLog);
}

async function shot(name) {
  await page.screenshot({ path: path.join(ART, "sandbox-" + name + ".png"), fullPage: true });
}

before(async () => {
  fs.mkdirSync(ART, { recursive: true });
  home = fs.mkdtempSync(path.join(os.tmpdir(), "mailout-sandbox-"));
  /* the README's first command, on a fresh data folder */
  const r = spawnSync(BIN, ["--home", home, "sandbox", "ensure-account"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /made the account "default"/);
  const port = await freePort();
  const env = { ...process.env };
  delete env.SSL_CERT_FILE; /* the sandbox's certificate comes from the account's CA file */
  delete env.SSL_CERT_DIR;
  serve = spawn(BIN, ["--home", home, "serve", "--http", "127.0.0.1:" + port], { env, stdio: ["ignore", "pipe", "pipe"] });
  serve.stdout.on("data", (d) => { serveLog += d; });
  serve.stderr.on("data", (d) => { serveLog += d; });
  base = "http://127.0.0.1:" + port;
  await waitForPort(port, 20000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text()))
      consoleProblems.push(m.text());
  });
  page.on("pageerror", (e) => consoleProblems.push("page error: " + e.message));
  page.on("dialog", (d) => d.accept());
});

after(async () => {
  if (browser) await browser.close();
  if (serve && serve.exitCode === null) {
    const done = new Promise((r) => serve.on("exit", r));
    serve.kill("SIGTERM");
    await done;
  }
  if (home && !process.env.MAILOUT_BROWSER_KEEP) fs.rmSync(home, { recursive: true, force: true });
});

test("a newcomer presses the green button and sees the letter in the sandbox inbox", async () => {
  /* Server: a fresh data folder whose only account is the sandbox one. We: make the admin
   * password, open the account, press "Send test email" without typing anything.
   * Must see: "Sent - check your inbox" after TLS and Login; the Sandbox inbox lists the
   * confirmation letter, and its page shows the text. */
  await page.goto(base + "/");
  await page.fill("#g-password", ADMIN_PASSWORD);
  await page.fill("#g-password2", ADMIN_PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/panel\/$/);
  await page.goto(base + "/panel/#/config/default");
  await page.locator("#f-provider").filter({ has: page.locator("option:checked[value=sandbox]") }).waitFor();
  await page.click("#btn-test");
  await page.locator("#outcome", { hasText: "Sent \u2014 check your inbox" }).waitFor();
  const steps = await page.$$eval("#steps li", (ls) => ls.map((l) => l.textContent));
  for (const want of ["TLS \u2713", "Login \u2713", "Send \u2713"])
    assert.ok(steps.some((s) => s.startsWith(want)), want + " in " + steps.join(" | "));
  await shot("01-sent");
  await page.click("a[data-nav=sandbox]");
  const row = page.locator("#sb-body tr").first();
  await row.waitFor();
  assert.match(await row.textContent(), /mail settings work/);
  assert.equal(await page.locator("#sb-body tr").count(), 1);
  await shot("02-inbox");
  await row.locator("a").click();
  await page.locator("#sb-text").waitFor();
  assert.match(await page.textContent("#sb-text"), /\S/);
  assert.match(await page.textContent("#sb-letter-h"), /mail settings work/);
  /* the confirmation letter has an HTML part: shown in a sandboxed frame */
  assert.equal(await page.getAttribute("#sb-html", "sandbox"), "");
  await page.frameLocator("#sb-html").locator("body", { hasText: /mailout/ }).waitFor();
  await shot("03-letter");
});

test("a letter with hostile HTML and an attachment: the frame runs nothing, the file downloads", async () => {
  /* Server: the worker delivers a queued message through the sandbox account. We: queue a
   * letter whose HTML carries a script and an image from elsewhere, with an attachment.
   * Must see: the HTML's text in the frame, no script run (window.__sbx unset in the page and
   * the frame, the frame's CSP forbids it), the attachment downloads with its bytes. */
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mailout-sbx-files-"));
  fs.writeFileSync(path.join(dir, "body.html"),
    "<p id=hi>Hello <b>shop</b></p><script>parent.__sbx=1;window.__sbx=1</script>" +
    "<img src=\"http://127.0.0.1:9/pixel.gif\">");
  fs.writeFileSync(path.join(dir, "invoice.txt"), "invoice 42\n");
  const r = spawnSync(BIN, ["--home", home, "send", "--to", "customer@example.com", "--subject", "Hostile",
                            "--html-file", path.join(dir, "body.html"), "--attach", path.join(dir, "invoice.txt")],
                      { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  await page.goto(base + "/panel/#/sandbox");
  const row = page.locator("#sb-body tr", { hasText: "Hostile" });
  for (let i = 0; i < 50 && (await row.count()) === 0; i++) {
    await new Promise((res) => setTimeout(res, 200));
    await page.click("#sb-refresh");
  }
  await row.locator("a").click();
  await page.frameLocator("#sb-html").locator("#hi", { hasText: "Hello shop" }).waitFor();
  const frame = page.frames().find((f) => f.url().endsWith("/html"));
  assert.ok(frame);
  assert.equal(await frame.evaluate(() => window.__sbx), undefined, "the script did not run");
  assert.equal(await page.evaluate(() => window.__sbx), undefined);
  const link = page.locator("#sb-attachments a", { hasText: "invoice.txt" });
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  assert.equal(download.suggestedFilename(), "invoice.txt");
  assert.equal(fs.readFileSync(await download.path(), "utf8"), "invoice 42\n");
  await shot("03b-hostile-letter");
  consoleProblems.length = 0; /* the blocked script and image are expected CSP reports */
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the 534-5.7.9 fault turns Password red with the app-password fix", async () => {
  /* Server: the sandbox answers the next login with Gmail's 534-5.7.9. We: switch the fault
   * on in the Sandbox inbox page, go back to the account and press the green button.
   * Must see: Password red with the App Password fix; no new letter in the inbox; the
   * fault is used up (off again). */
  await page.goto(base + "/panel/#/sandbox");
  await page.locator("#sb-fault-now", { hasText: "No fault" }).waitFor();
  await page.selectOption("#sb-fault-kind", "auth-534");
  await page.selectOption("#sb-fault-mode", "next");
  await page.fill("#sb-fault-value", "1");
  await page.click("#sb-fault-on");
  await page.locator("#sb-fault-now", { hasText: "auth-534" }).waitFor();
  await page.goto(base + "/panel/#/config/default");
  await page.locator("#f-provider").filter({ has: page.locator("option:checked[value=sandbox]") }).waitFor();
  await page.click("#btn-test");
  await page.locator("#f-password[aria-invalid=true]").waitFor();
  const text = await page.textContent("#e-password");
  assert.match(text, /App Password/i);
  assert.match(await page.textContent("#outcome"), /534/);
  assert.equal(await page.locator("[aria-invalid=true]").count(), 1, "only Password is red");
  await shot("04-fault-534");
  await page.goto(base + "/panel/#/sandbox");
  await page.locator("#sb-fault-now", { hasText: "No fault" }).waitFor();
  assert.equal(await page.locator("#sb-body tr").count(), 2, "the refused letter is not in the inbox");
  await page.click("#sb-clear");
  await page.locator("#sb-empty").waitFor({ state: "visible" });
  assert.deepEqual(consoleProblems, []);
});
