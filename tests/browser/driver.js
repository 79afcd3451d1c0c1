// A real Chromium (Debian's /usr/bin/chromium) driven by playwright-core,
// one JSON command per stdin line, one JSON answer per stdout line, so a
// Python test can interleave browser steps with fleet events (kill an
// origin, publish) and assert on what the page shows.
//
// Commands ({"op": ..., ...}):
//   open {name, url, width, height, js, headers}   a fresh context and page
//   eval {name, expr}                      value of an expression in the page
//   click {name, selector, dialog}         dialog: "accept" | "dismiss" (confirms)
//   select {name, selector, value}
//   fill {name, selector, value}
//   screenshot {name, path}
//   close {name}
//   quit
// Answers: {"ok": true, "value": ..., "dialogs": [...]} or {"ok": false, "error"}.
"use strict";
const readline = require("readline");
const { chromium } = require("playwright-core");

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage"];

let browser = null;
const pages = {}; // name -> {ctx, page, dialogs, mode}

async function handle(cmd) {
  if (!browser) {
    // launch() gives every run a fresh temporary profile (user-data-dir).
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: ARGS,
      headless: true,
      timeout: 60000,
    });
  }
  const p = pages[cmd.name];
  switch (cmd.op) {
  case "open": {
    if (p) await p.ctx.close();
    const ctx = await browser.newContext({
      viewport: { width: cmd.width || 1280, height: cmd.height || 800 },
      javaScriptEnabled: cmd.js !== false,
      extraHTTPHeaders: cmd.headers || {},
    });
    const page = await ctx.newPage();
    const st = { ctx, page, dialogs: [], mode: "dismiss", console: [] };
    page.on("dialog", async (d) => {
      st.dialogs.push(d.message());
      if (st.mode === "accept") await d.accept(); else await d.dismiss();
    });
    page.on("pageerror", (e) => st.console.push("pageerror: " + e.message));
    pages[cmd.name] = st;
    const r = await page.goto(cmd.url, { waitUntil: "load", timeout: 30000 });
    return { status: r ? r.status() : null };
  }
  case "eval":
    return await p.page.evaluate(cmd.expr);
  case "click": {
    p.mode = cmd.dialog || "dismiss";
    p.dialogs = [];
    await p.page.click(cmd.selector, { timeout: 15000 });
    return { dialogs: p.dialogs };
  }
  case "select":
    return await p.page.selectOption(cmd.selector, cmd.value, { timeout: 15000 });
  case "fill":
    await p.page.fill(cmd.selector, cmd.value, { timeout: 15000 });
    return null;
  case "screenshot":
    await p.page.screenshot({ path: cmd.path, fullPage: true, timeout: 30000 });
    return cmd.path;
  case "errors":
    return p.console;
  case "close":
    if (p) await p.ctx.close();
    delete pages[cmd.name];
    return null;
  case "quit":
    if (browser) await browser.close();
    browser = null;
    return null;
  default:
    throw new Error("unknown op " + cmd.op);
  }
}

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on("line", (line) => {
  chain = chain.then(async () => {
    let out;
    try {
      const cmd = JSON.parse(line);
      const value = await handle(cmd);
      out = { ok: true, value: value === undefined ? null : value };
      if (cmd.op === "quit") {
        process.stdout.write(JSON.stringify(out) + "\n");
        process.exit(0);
      }
    } catch (e) {
      out = { ok: false, error: String(e && e.stack || e) };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  });
});
rl.on("close", () => {
  chain.then(async () => {
    if (browser) await browser.close();
    process.exit(0);
  });
});
