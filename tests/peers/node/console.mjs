// The admin console's web UI in a real browser: Chromium driven headless by
// playwright-core (no browser download: the machine's Chromium is used).
// Driven by tests/admin_browser.rs; runnable by hand against any console:
//
//   CHROMIUM=/usr/bin/chromium CONSOLE_URL=http://127.0.0.1:8089/ \
//   OPERATOR_USER=… OPERATOR_PASSWORD=… VIEWER_USER=… VIEWER_PASSWORD=… \
//   UNKNOWN_CODE=000.00.99.H58-250101-0001 [ADMIN_USER=… ADMIN_PASSWORD=…] \
//   [SCREENSHOTS_DIR=dir] node console.mjs
//
// The walk: log in as the operator, the dashboard renders (and its 30 days
// download as CSV), open the
// not_found template, add a marker word and see it in the preview with its
// encoding and segment count, try an unknown variable and see the error
// with its line, save a version and activate it, have the simulator answer
// an unknown code with the marker, roll back, see the marker gone, log out;
// then as the viewer the template editor is read-only. Given an
// administrator, it also lists the accounts and the audit log, creates an
// operator whose first password the browser is then made to change. On a
// page whose clock it moves, the channel page re-reads itself every 30 s
// until its switch is turned off. One JSON line per
// step on stdout; on a failure the last line says which step, why, and
// where its screenshot is, and the exit code is 1.

import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

// playwright-core from the node_modules of TEST_NODE_SMPP_DIR when set (as
// common.js finds smpp), else beside this script.
const here = path.dirname(fileURLToPath(import.meta.url));
const modules = createRequire(path.join(process.env.TEST_NODE_SMPP_DIR || here, "package.json"));
const { chromium } = modules("playwright-core");
const PLAYWRIGHT_VERSION = modules("playwright-core/package.json").version;

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") {
    console.log(JSON.stringify({ step: "setup", ok: false, error: `${name} is not set` }));
    process.exit(2);
  }
  return v;
};

const CHROMIUM = env("CHROMIUM");
const BASE = env("CONSOLE_URL").replace(/\/?$/, "/");
const OPERATOR = { user: env("OPERATOR_USER"), password: env("OPERATOR_PASSWORD") };
const VIEWER = { user: env("VIEWER_USER"), password: env("VIEWER_PASSWORD") };
const ADMIN = process.env.ADMIN_USER ? { user: process.env.ADMIN_USER, password: env("ADMIN_PASSWORD") } : null;
// The account the administrator creates (its first password must be changed).
const FRESH = { user: `moi${String(Date.now()).slice(-6)}`, password: `Dau-tien-${String(Date.now()).slice(-5)}!` };
const UNKNOWN_CODE = env("UNKNOWN_CODE");
const SHOTS = process.env.SCREENSHOTS_DIR || "";
const TEMPLATE = process.env.TEMPLATE || "not_found";
// A word no template has: upper-case ASCII plus digits, so it reads back
// unchanged from any encoding.
const MARKER = process.env.MARKER || `KIEMTRA${String(Date.now()).slice(-5)}`;
const TIMEOUT = Number(process.env.STEP_TIMEOUT_MS || 20000);
// The dashboard's and channel page's refresh period (app.js AUTO_REFRESH_MS).
const AUTO_REFRESH_MS = 30000;

if (SHOTS) fs.mkdirSync(SHOTS, { recursive: true });

const problems = []; // CSP violations and uncaught exceptions, from every page
let current = null; // the page a failure is photographed on
let stepCount = 0;

function watch(page, who) {
  page.on("pageerror", (e) => problems.push(`${who}: uncaught ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) problems.push(`${who}: ${m.text()}`);
  });
}

async function step(name, fn) {
  const started = Date.now();
  try {
    const detail = (await fn()) || {};
    if (problems.length) throw new Error(problems.join("; "));
    stepCount += 1;
    console.log(JSON.stringify({ step: name, ok: true, ms: Date.now() - started, ...detail }));
  } catch (e) {
    let screenshot = null;
    if (current) {
      screenshot = path.join(SHOTS || os.tmpdir(), `console-failed-${name}.png`);
      await current.screenshot({ path: screenshot, fullPage: true }).catch(() => (screenshot = null));
    }
    console.log(JSON.stringify({ step: name, ok: false, ms: Date.now() - started, error: String(e && e.message ? e.message : e).slice(0, 2000), url: current ? current.url() : null, screenshot }));
    await browser.close().catch(() => {});
    process.exit(1);
  }
}

async function shot(page, name) {
  if (!SHOTS) return null;
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

const tid = (id) => `[data-test="${id}"]`;

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function submitLogin(page, who) {
  await page.goto(BASE + "#/login");
  await page.locator(tid("login-form")).waitFor();
  await page.fill(tid("login-username"), who.user);
  await page.fill(tid("login-password"), who.password);
  await page.click(tid("login-submit"));
}

async function login(page, who) {
  await submitLogin(page, who);
  await page.locator(tid("page-dashboard")).waitFor();
  const whoami = await page.locator(tid("whoami")).innerText();
  check(whoami.includes(who.user), `the header names ${who.user}: ${whoami}`);
  return whoami;
}

async function logout(page) {
  await page.click(tid("logout"));
  await page.locator(tid("login-form")).waitFor();
}

async function openEditor(page) {
  await page.goto(BASE + "#/templates/" + TEMPLATE);
  await page.locator(tid("page-template")).waitFor();
  await page.locator(`${tid("preview")}[data-state="ok"]`).waitFor();
}

/** Types `text` into the editor and waits for the server's preview of it. */
async function typeSource(page, text, expect) {
  await page.fill(tid("template-source"), text);
  await page.locator(`${tid("preview")}[data-state="${expect}"]`).waitFor();
}

async function samples(page) {
  return page.locator(tid("preview-sample")).evaluateAll((nodes) => nodes.map((n) => ({
    sample: n.dataset.sample,
    text: n.querySelector('[data-test="sample-text"]').textContent,
    encoding: n.querySelector('[data-test="sample-encoding"]').textContent,
    segments: Number(n.querySelector('[data-test="sample-segments"]').dataset.segments),
    budget: n.querySelector('[data-test="sample-segments"]').dataset.budget,
    fits: n.querySelector('[data-test="sample-fits"]').classList.contains("good"),
  })));
}

async function simulate(page, text) {
  await page.goto(BASE + "#/simulator");
  await page.locator(tid("page-simulator")).waitFor();
  const before = await page.locator(tid("sim-reply")).count();
  await page.fill(tid("sim-from"), "0909000111");
  await page.fill(tid("sim-text"), text);
  await page.click(tid("sim-send"));
  await page.locator(tid("sim-reply")).nth(before).waitFor();
  const reply = page.locator(tid("sim-reply")).nth(before);
  return { text: await reply.innerText(), kind: await reply.getAttribute("data-kind"), meta: await page.locator(tid("sim-meta")).nth(before).innerText() };
}

async function versionIds(page) {
  return page.locator('[data-test^="version-row-"]').evaluateAll((rows) => rows.map((r) => r.dataset.test.slice("version-row-".length)));
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Root in CI and containers: Chromium's sandbox needs namespaces it may not have.
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});

const laptop = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "vi-VN" });
const page = await laptop.newPage();
page.setDefaultTimeout(TIMEOUT);
watch(page, "operator");
current = page;

let edited = "";
let savedId = null;

await step("login-page", async () => {
  await page.goto(BASE);
  const version = browser.version();
  await page.locator(tid("login-form")).waitFor();
  const lang = await page.getAttribute("html", "lang");
  check(lang === "vi", `Vietnamese by default, html lang=${lang}`);
  return { chromium: version, playwright: PLAYWRIGHT_VERSION, screenshot: await shot(page, "login") };
});

await step("login-operator", async () => ({ whoami: await login(page, OPERATOR) }));

await step("dashboard", async () => {
  await page.locator(`${tid("chart-hour")} svg`).waitFor();
  await page.locator(`${tid("chart-day")} svg`).waitFor();
  await page.locator(tid("found-ratio")).waitFor();
  await page.locator(tid("latency")).waitFor();
  await page.locator(tid("card-sync")).waitFor();
  const hourBars = await page.locator(`${tid("chart-hour")} svg g.bar`).count();
  const dayBars = await page.locator(`${tid("chart-day")} svg g.bar`).count();
  check(hourBars >= 23 && hourBars <= 25, `24 hourly bars, got ${hourBars}`);
  check(dayBars >= 29 && dayBars <= 31, `30 daily bars, got ${dayBars}`);
  const file = await shot(page, "dashboard");
  // The 30 days as CSV, downloaded as a spreadsheet would be.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click(tid("stats-csv"))]);
  const csv = fs.readFileSync(await download.path(), "utf8").trim().split("\n");
  check(csv[0] === "bucket_start,channel,outcome,messages", `CSV header: ${csv[0]}`);
  check(/^motcua-stats-day-\d+-\d+\.csv$/.test(download.suggestedFilename()), `CSV name: ${download.suggestedFilename()}`);
  const rows = csv.slice(1).map((line) => line.split(","));
  check(rows.length > 0 && rows.every((r) => r.length === 4 && r[0].endsWith("+07:00")), `CSV rows: ${csv.join(" | ")}`);
  return { hour_bars: hourBars, day_bars: dayBars, csv_rows: rows.length, screenshot: file };
});

await step("language-switch", async () => {
  await page.selectOption(tid("lang"), "en");
  await page.waitForFunction(() => document.documentElement.lang === "en");
  const nav = await page.locator(tid("nav-templates")).innerText();
  check(nav === "Templates", `English nav: ${nav}`);
  await page.selectOption(tid("lang"), "vi");
  await page.waitForFunction(() => document.documentElement.lang === "vi");
  const back = await page.locator(tid("nav-templates")).innerText();
  check(back === "Mẫu tin nhắn", `Vietnamese nav: ${back}`);
  return {};
});

await step("templates-list", async () => {
  await page.click(tid("nav-templates"));
  await page.locator(tid("templates-table")).waitFor();
  const names = await page.locator('[data-test^="template-row-"]').evaluateAll((rows) => rows.map((r) => r.dataset.test.slice("template-row-".length)));
  check(names.includes(TEMPLATE), `${TEMPLATE} is listed: ${names}`);
  await page.click(tid("template-link-" + TEMPLATE));
  await page.locator(`${tid("preview")}[data-state="ok"]`).waitFor();
  return { templates: names };
});

await step("edit-preview-marker", async () => {
  const original = await page.inputValue(tid("template-source"));
  const lines = original.split("\n");
  // The first line that is text, not a comment or a tag.
  const at = lines.findIndex((l) => l.trim() && !/^\s*\{[#%]/.test(l) && !/^\s*[#-]*\s*(Variables|Reply|Budget)/.test(l) && !l.includes("#}"));
  check(at >= 0, "a text line in the template");
  lines[at] = `${MARKER} ${lines[at]}`;
  edited = lines.join("\n");
  await typeSource(page, edited, "ok");
  const got = await samples(page);
  check(got.length > 0, "samples rendered");
  check(got.every((s) => s.text.includes(MARKER)), `every sample shows ${MARKER}: ${JSON.stringify(got)}`);
  check(got.every((s) => ["GSM-7", "UCS-2"].includes(s.encoding) && s.segments >= 1), `encoding and segments shown: ${JSON.stringify(got)}`);
  check(got.every((s) => s.fits), `the edited text fits its budget: ${JSON.stringify(got)}`);
  const estimate = await page.locator(tid("estimate")).innerText();
  return { marker: MARKER, samples: got.map(({ sample, encoding, segments, budget }) => ({ sample, encoding, segments, budget })), estimate, screenshot: await shot(page, "template-editor") };
});

await step("unknown-variable", async () => {
  const withError = edited.replace(/\n*$/, "") + "\n{{ nonsense }}\n";
  const expectedLine = withError.split("\n").findIndex((l) => l.includes("nonsense")) + 1;
  await typeSource(page, withError, "error");
  const message = await page.locator(tid("preview-error-message")).innerText();
  const line = Number(await page.locator(tid("preview-error-line")).getAttribute("data-line"));
  const gutter = Number(await page.locator(`${tid("template-gutter")} ${tid("error-line")}`).innerText());
  check(/nonsense/.test(message), `the error names the variable: ${message}`);
  check(line === expectedLine, `error on line ${expectedLine}, shown ${line}`);
  check(gutter === expectedLine, `gutter marks line ${expectedLine}, marked ${gutter}`);
  const shotFile = await shot(page, "template-editor-error");
  await typeSource(page, edited, "ok");
  check(await page.locator(tid("preview-error")).isHidden(), "the error clears once the text is right again");
  return { line, message, screenshot: shotFile };
});

await step("save-version", async () => {
  const before = await versionIds(page);
  await page.fill(tid("version-note"), `browser test ${MARKER}`);
  await page.click(tid("save-version"));
  await page.waitForFunction((n) => document.querySelectorAll('[data-test^="version-row-"]').length > n, before.length);
  const after = await versionIds(page);
  savedId = after.find((id) => !before.includes(id));
  check(savedId, `a new version row: before ${before}, after ${after}`);
  const flashText = await page.locator(tid("flash")).innerText();
  check(await page.locator(tid("activate-" + savedId)).isVisible(), "the new version can be activated");
  return { version: savedId, flash: flashText };
});

await step("activate", async () => {
  await page.click(tid("activate-" + savedId));
  await page.locator(`${tid("version-row-" + savedId)} ${tid("active-badge")}`).waitFor();
  const active = await page.locator(tid("active-version-id")).innerText();
  check(active.trim() === String(savedId), `active version ${savedId}, page says ${active}`);
  const source = await page.inputValue(tid("template-source"));
  check(source.includes(MARKER), "the editor shows the text now in use");
  return { active };
});

await step("simulator-marker", async () => {
  const reply = await simulate(page, `TC ${UNKNOWN_CODE}`);
  check(reply.text.includes(MARKER), `the reply uses the new version: ${JSON.stringify(reply)}`);
  check(/GSM-7|UCS-2/.test(reply.meta) && /SMS/.test(reply.meta), `encoding and segments shown: ${reply.meta}`);
  return { reply: reply.text, kind: reply.kind, meta: reply.meta, screenshot: await shot(page, "simulator") };
});

await step("rollback", async () => {
  await openEditor(page);
  await page.click(tid("rollback"));
  await page.waitForFunction((id) => {
    const row = document.querySelector(`[data-test="version-row-${id}"]`);
    return row && !row.querySelector('[data-test="active-badge"]') && document.querySelector('[data-test="preview"]').dataset.state === "ok";
  }, savedId);
  const source = await page.inputValue(tid("template-source"));
  check(!source.includes(MARKER), "the editor shows the text in use before");
  const got = await samples(page);
  check(got.every((s) => !s.text.includes(MARKER)), "the preview has no marker");
  return { active: (await page.locator(tid("active-version-id")).innerText()).trim() };
});

await step("simulator-after-rollback", async () => {
  const reply = await simulate(page, `TC ${UNKNOWN_CODE}`);
  check(!reply.text.includes(MARKER), `the reply no longer has the marker: ${reply.text}`);
  check(reply.text.length > 0, "a reply");
  return { reply: reply.text, kind: reply.kind };
});

await step("message-log", async () => {
  await page.click(tid("nav-messages"));
  await page.locator(tid("msg-table")).waitFor();
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-test="msg-status"]');
    return s && !/…|\.\.\./.test(s.textContent);
  });
  const rows = await page.locator(tid("msg-row")).count();
  return { rows, screenshot: await shot(page, "messages") };
});

await step("lists", async () => {
  await page.click(tid("nav-lists"));
  await page.locator(tid("blocked")).waitFor();
  await page.locator(tid("block-form")).waitFor();
  return { screenshot: await shot(page, "lists") };
});

await step("channels", async () => {
  await page.click(tid("nav-channels"));
  await page.locator(tid("sync-card")).waitFor();
  await page.locator(tid("channels-smpp")).waitFor();
  return { smpp_links: await page.locator(tid("smpp-link")).count(), screenshot: await shot(page, "channels") };
});

await step("operator-no-accounts", async () => {
  check((await page.locator(tid("nav-accounts")).count()) === 0, "no Accounts link for an operator");
  return {};
});

await step("logout-operator", async () => {
  await logout(page);
  await page.goto(BASE + "#/dashboard");
  await page.locator(tid("login-form")).waitFor();
  return {};
});

if (ADMIN) {
  await step("accounts", async () => {
    await login(page, ADMIN);
    await page.click(tid("nav-accounts"));
    await page.locator(tid("accounts-table")).waitFor();
    await page.locator(tid("audit-table")).waitFor();
    const users = await page.locator(tid("account-row")).evaluateAll((rows) => rows.map((r) => r.dataset.username));
    check(users.includes(OPERATOR.user) && users.includes(VIEWER.user), `accounts listed: ${users}`);
    const audit = await page.locator(tid("audit-row")).count();
    check(audit > 0, "the audit log has entries");
    const file = await shot(page, "accounts");
    await page.fill(tid("new-username"), FRESH.user);
    await page.selectOption(tid("new-role"), "operator");
    await page.fill(tid("new-password"), FRESH.password);
    await page.click(tid("account-create"));
    const row = page.locator(`${tid("account-row")}[data-username="${FRESH.user}"]`);
    await row.waitFor();
    check((await row.locator(tid("account-role")).inputValue()) === "operator", "created as an operator");
    await logout(page);
    return { accounts: users, audit_rows: audit, created: FRESH.user, screenshot: file };
  });

  await step("forced-password-change", async () => {
    await submitLogin(page, FRESH);
    await page.locator(tid("password-forced")).waitFor();
    check((await page.locator(tid("nav-dashboard")).count()) === 0, "no menu before the password is changed");
    await page.goto(BASE + "#/templates");
    await page.locator(tid("password-form")).waitFor();
    const next = `${FRESH.password}-doi-${String(Date.now()).slice(-4)}`;
    await page.fill(tid("password-current"), FRESH.password);
    await page.fill(tid("password-new"), next);
    await page.fill(tid("password-confirm"), next);
    await page.click(tid("password-submit"));
    await page.locator(tid("page-dashboard")).waitFor();
    await logout(page);
    await login(page, { user: FRESH.user, password: next });
    check((await page.locator(tid("password-form")).count()) === 0, "the new password is not forced again");
    await logout(page);
    return { account: FRESH.user };
  });
}

await step("login-viewer", async () => ({ whoami: await login(page, VIEWER) }));

await step("viewer-read-only", async () => {
  check((await page.locator(tid("nav-simulator")).count()) === 0, "no Simulator link for a viewer");
  check((await page.locator(tid("nav-accounts")).count()) === 0, "no Accounts link for a viewer");
  await openEditor(page);
  const readOnly = await page.locator(tid("template-source")).evaluate((t) => t.readOnly);
  check(readOnly, "the textarea is read-only");
  await page.locator(tid("template-readonly")).waitFor();
  for (const id of ["save-version", "rollback", "version-note"]) {
    check((await page.locator(tid(id)).count()) === 0, `no ${id} for a viewer`);
  }
  check((await page.locator('[data-test^="activate-"]').count()) === 0, "no Activate for a viewer");
  const chips = await page.locator(tid("variable-chip")).evaluateAll((c) => c.map((x) => x.disabled));
  check(chips.every(Boolean), "variable chips are disabled");
  check((await samples(page)).length > 0, "the viewer still sees the preview");
  await page.goto(BASE + "#/simulator");
  await page.locator(tid("forbidden")).waitFor();
  await logout(page);
  return { chips: chips.length };
});

await step("phone-viewport", async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const small = await phone.newPage();
  small.setDefaultTimeout(TIMEOUT);
  watch(small, "phone");
  current = small;
  await login(small, OPERATOR);
  check(await small.locator(tid("nav-toggle")).isVisible(), "the menu button shows on a phone");
  check(!(await small.locator(tid("nav-templates")).isVisible()), "the nav is collapsed on a phone");
  await small.click(tid("nav-toggle"));
  await small.locator(tid("nav-templates")).waitFor({ state: "visible" });
  await small.click(tid("nav-templates"));
  await small.locator(tid("templates-table")).waitFor();
  check(!(await small.locator(tid("nav-templates")).isVisible()), "the nav folds after a choice");
  await openEditor(small);
  const width = await small.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 390 + 1, `no horizontal scrolling on a phone (page ${width}px wide)`);
  const file = SHOTS ? path.join(SHOTS, "template-editor-phone.png") : null;
  if (file) await small.screenshot({ path: file, fullPage: true });
  await logout(small);
  await phone.close();
  current = page;
  return { scroll_width: width, screenshot: file };
});

await step("auto-refresh", async () => {
  // A page whose clock the test moves: the channel page re-reads itself
  // after 30 s while the switch is on, and not at all once it is off.
  const wall = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "vi-VN" });
  const board = await wall.newPage();
  board.setDefaultTimeout(TIMEOUT);
  watch(board, "auto-refresh");
  current = board;
  await board.clock.install();
  await login(board, OPERATOR);
  await board.click(tid("nav-channels"));
  await board.locator(tid("sync-card")).waitFor();
  check(await board.locator(tid("auto-refresh")).isChecked(), "auto-refresh is on by default");
  let reads = 0;
  board.on("request", (r) => {
    if (new URL(r.url()).pathname === "/api/v1/channels") reads += 1;
  });
  const reread = board.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/channels");
  await board.clock.runFor(AUTO_REFRESH_MS + 1000);
  await reread;
  await board.locator(tid("sync-card")).waitFor();
  const afterOne = reads;
  check(afterOne >= 1, "the channel page was read again");
  await board.uncheck(tid("auto-refresh"));
  await board.clock.runFor(3 * AUTO_REFRESH_MS);
  await board.waitForTimeout(500);
  check(reads === afterOne, `no reads once switched off (${reads - afterOne} more)`);
  await board.reload();
  await board.locator(tid("sync-card")).waitFor();
  check(!(await board.locator(tid("auto-refresh")).isChecked()), "the choice is remembered");
  await wall.close();
  current = page;
  return { rereads: afterOne };
});

await browser.close();
console.log(JSON.stringify({ step: "done", ok: true, steps: stepCount, marker: MARKER }));
