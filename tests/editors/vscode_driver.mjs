// Drives a real VS Code (code-server in Debian's chromium, through playwright-core) the way a
// user would: opens files, types, presses Tab, runs palette commands. Asserts nothing itself:
// each scenario records what it saw (or its error and a screenshot) in the results JSON, and
// tests/editors/test_vscode_real.py asserts on that and on the files on disk.
//
//   node vscode_driver.mjs config.json
//   config: {playwrightDir, chromium, url, workspace, results, screenshots, scenarios: [{name, ...}]}
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const require = createRequire(path.join(config.playwrightDir, 'package.json'));
const { chromium } = require('playwright-core');

const SLOW = config.timeoutScale ?? 1; // 2 shared cores: every wait is generous
const seconds = (s) => s * 1000 * SLOW;
const log = (message) => console.log(`[driver ${new Date().toISOString().slice(11, 23)}] ${message}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Thrown by a probe to stop waiting at once (other errors are retried until the timeout). */
class Fatal extends Error {}

/** Polls `probe` until it returns a truthy value; throws `what` on timeout. */
async function until(what, timeoutMs, probe, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      if (error instanceof Fatal) throw error;
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (${last.message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

const ACTIVE_EDITOR = '.editor-group-container.active .monaco-editor[data-uri]';

/** The active editor's visible text (VS Code renders spaces as U+00A0). */
async function editorText(page) {
  const lines = page.locator(`${ACTIVE_EDITOR} .view-lines`).first();
  return (await lines.innerText({ timeout: 2000 })).replace(/\u00a0/g, ' ');
}

async function activeUri(page) {
  return page.locator(ACTIVE_EDITOR).first().getAttribute('data-uri', { timeout: 2000 });
}

/** Waits for the workbench and for our extension's status bar item. */
async function openWorkbench(page) {
  const url = `${config.url}/?folder=${encodeURIComponent(config.workspace)}`;
  log(`opening ${url}`);
  await page.goto(url, { timeout: seconds(120) });
  await page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: seconds(180) });
  log('workbench loaded');
  const status = page.locator('.statusbar-item').filter({ hasText: /aigents:/ });
  await status.first().waitFor({ timeout: seconds(120) });
  log(`extension active: "${(await status.first().innerText()).trim()}"`);
  // A notification toast (e.g. a welcome) must not sit over the editor.
  await page.keyboard.press('Escape');
}

/** Escape, only when a quick input (palette, input box) is open. */
async function closeQuickInput(page) {
  const widget = page.locator('.quick-input-widget');
  if (await widget.isVisible().catch(() => false)) await page.keyboard.press('Escape');
}

/** Runs a palette command by its title, retrying when the palette lost the keystrokes. */
async function runCommand(page, title) {
  await until(`the palette entry "${title}"`, seconds(45), async () => {
    await closeQuickInput(page); // (Escape in the editor would drop the selection)
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: seconds(10) });
    await input.fill(`>${title}`);
    const row = page.locator('.quick-input-list .monaco-list-row').filter({ hasText: title }).first();
    await row.waitFor({ state: 'visible', timeout: seconds(10) });
    await row.click();
    await page.locator('.quick-input-list').filter({ hasText: title }).waitFor({ state: 'hidden', timeout: 5000 });
    return true;
  });
  log(`ran "${title}"`);
}

/** Opens a workspace file with Quick Open and waits until it is the active editor. */
async function openFile(page, name) {
  await until(`${name} open in the editor`, seconds(60), async () => {
    if ((await activeUri(page).catch(() => ''))?.endsWith(`/${name}`)) return true;
    await closeQuickInput(page);
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: seconds(10) });
    await input.fill(name);
    const row = page.locator('.quick-input-list .monaco-list-row').filter({ hasText: name }).first();
    await row.waitFor({ state: 'visible', timeout: seconds(10) });
    await page.keyboard.press('Enter');
    await until('the editor', 5000, async () => (await activeUri(page))?.endsWith(`/${name}`));
    return true;
  });
  await page.locator(`${ACTIVE_EDITOR} .view-lines`).first().waitFor({ timeout: seconds(20) });
  log(`opened ${name}`);
}

/** Clicks at the end of the first line holding `text` in the active editor. */
async function clickLine(page, text) {
  const line = page.locator(`${ACTIVE_EDITOR} .view-line`).filter({ hasText: text }).first();
  await line.waitFor({ timeout: seconds(20) });
  await line.click();
  await page.keyboard.press('End');
}

async function save(page) {
  await page.keyboard.press('Control+S');
  await until('the file saved', seconds(20), async () =>
    (await page.locator('.editor-group-container.active .tab.active.dirty').count()) === 0,
  );
}

/** Picks the quick-pick row that `text` filters to (typed into the open quick input). */
async function choose(page, text) {
  const input = page.locator('.quick-input-widget .quick-input-box input');
  await input.waitFor({ state: 'visible', timeout: seconds(30) });
  await input.fill(text);
  const row = page.locator('.quick-input-widget .monaco-list-row').filter({ hasText: text }).first();
  await row.waitFor({ state: 'visible', timeout: seconds(30) });
  await page.keyboard.press('Enter');
  log(`picked "${text}"`);
}

/** The text of the status bar and the notification toasts. */
async function shownText(page) {
  const parts = await page.locator('.statusbar, .notifications-toasts').allInnerTexts();
  return parts.join('\n');
}

const scenarios = {
  /** Type a function header and `return `: ghost text appears; Tab accepts it. */
  async ghost(page, s, record) {
    await openFile(page, s.file);
    await page.keyboard.press('Control+End');
    await page.keyboard.type(s.header, { delay: 40 });
    await page.keyboard.press('Enter');
    await page.keyboard.type(s.typed, { delay: 40 });
    const ghost = page.locator(`${ACTIVE_EDITOR} .ghost-text-decoration`);
    let attempt = 0;
    const shown = await until('ghost text', seconds(90), async () => {
      const count = await ghost.count();
      if (count > 0) {
        const text = (await ghost.allInnerTexts()).join('').replace(/\u00a0/g, ' ');
        if (text.trim()) return text;
      }
      // Nothing yet (the server may still be starting): ask again, as Alt+\ does for a user.
      attempt += 1;
      if (attempt % 20 === 0) {
        log('no ghost text yet: triggering the inline suggestion again');
        await page.keyboard.press('Alt+Backslash');
      }
      return undefined;
    }, 250);
    record.ghost = shown;
    log(`ghost text: ${JSON.stringify(shown)}`);
    await page.keyboard.press('Tab');
    record.text = await until('the ghost text accepted', seconds(20), async () => {
      const text = await editorText(page);
      return text.includes(s.expectLine) && (await ghost.count()) === 0 ? text : undefined;
    });
    await save(page);
  },

  /** Rename a word on `cursorAt`'s line (`erase` characters before the line's end minus
   * `back`, then `typed`): the next edit appears as a diff preview (struck-through old text,
   * new text after it); Tab applies it. */
  async nextedit(page, s, record) {
    await openFile(page, s.file);
    await clickLine(page, s.cursorAt);
    for (let i = 0; i < (s.back ?? 0); i += 1) await page.keyboard.press('ArrowLeft');
    for (let i = 0; i < s.erase; i += 1) await page.keyboard.press('Backspace');
    await page.keyboard.type(s.typed, { delay: 40 });
    const preview = async () =>
      page.locator(`${ACTIVE_EDITOR} .view-lines`).first().evaluate((root) => {
        const struck = [];
        const added = [];
        for (const span of root.querySelectorAll('span')) {
          if (getComputedStyle(span).textDecorationLine.includes('line-through')) struck.push(span.textContent);
          const after = getComputedStyle(span, '::after').content;
          if (after && after !== 'none' && after !== 'normal') added.push(after.replace(/^"|"$/g, ''));
        }
        return struck.length && added.length ? { struck: struck.join(''), added: added.join('') } : undefined;
      });
    const shown = await until('the next-edit preview', seconds(90), preview, 250);
    record.struck = shown.struck.replace(/\u00a0/g, ' ');
    record.added = shown.added;
    log(`next edit shown: ${JSON.stringify(shown)}`);
    await page.keyboard.press('Tab');
    record.text = await until('the next edit applied', seconds(20), async () => {
      const text = await editorText(page);
      return text.includes(s.expectLine) && !(await preview()) ? text : undefined;
    });
    await save(page);
  },

  /** The model picker: a suggested model downloaded with its progress shown, then a model
   * loaded with a configuration. */
  async picker(page, s, record) {
    await runCommand(page, s.command);
    await choose(page, s.download);
    record.progress = await until('the download progress', seconds(90), async () => {
      const text = await shownText(page);
      return /downloading[^\n]*\d+ %/.test(text) ? text : undefined;
    }, 100);
    record.downloaded = await until('the download done', seconds(90), async () => {
      const text = await shownText(page);
      return text.includes('aigents: downloaded') ? text : undefined;
    });
    await page.keyboard.press('Escape');
    await runCommand(page, s.command);
    await choose(page, s.model);
    await choose(page, s.task);
    await choose(page, s.load);
    record.loaded = await until('the model loaded', seconds(90), async () => {
      const text = await shownText(page);
      return text.includes(s.expect) ? text : undefined;
    });
  },

  /** A palette command on the cursor's line (or `selectDown` more lines): its edit must land in
   * the file without the refactor preview. */
  async command(page, s, record) {
    await openFile(page, s.file);
    await clickLine(page, s.cursorAt);
    for (let i = 0; i < (s.selectDown ?? 0); i += 1) {
      if (i === 0) await page.keyboard.press('Home');
      await page.keyboard.press('Shift+ArrowDown');
    }
    if (s.selectDown) await page.keyboard.press('Shift+End');
    await runCommand(page, s.command);
    if (s.input) {
      const input = page.locator('.quick-input-widget .quick-input-box input');
      await input.waitFor({ state: 'visible', timeout: seconds(20) });
      await input.fill(s.input);
      await page.keyboard.press('Enter');
      log(`entered "${s.input}"`);
    }
    // The edit lands in the document (its tab turns dirty, whichever tab is in front: the
    // results panel opens beside it and may take the front of the group); the refactor
    // preview (needsConfirmation) would be a failure.
    const preview = page.getByText('Refactor Preview', { exact: true });
    const tab = page.locator('.tab').filter({ hasText: s.file }).first();
    await until(`an edit in ${s.file}`, seconds(120), async () => {
      if (await preview.count()) throw new Fatal('VS Code opened the refactor preview (needsConfirmation)');
      return (await page.locator('.tab.dirty').filter({ hasText: s.file }).count()) > 0;
    }, 500);
    record.preview = (await preview.count()) > 0;
    log(`${s.file} edited`);
    // Bring its editor to the front by its tab (not by Quick Open: a focused webview can
    // swallow the keys), save, and read what reached the disk.
    await until(`${s.file} in front`, seconds(30), async () => {
      if ((await activeUri(page).catch(() => ''))?.endsWith(`/${s.file}`)) return true;
      await tab.click({ timeout: 2000 });
      return false;
    });
    await save(page);
    const onDisk = path.join(config.workspace, s.file);
    record.text = await until(`"${s.expect}" in ${s.file} on disk`, seconds(20), async () => {
      const text = fs.readFileSync(onDisk, 'utf8');
      return text.includes(s.expect) ? text : undefined;
    });
  },
};

async function main() {
  const results = { scenarios: {} };
  const write = () => fs.writeFileSync(config.results, JSON.stringify(results, null, 2));
  fs.mkdirSync(config.screenshots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    args: [
      '--no-sandbox', // CI runs as root
      '--disable-dev-shm-usage',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      // Only loopback resolves: the browser reaches code-server and nothing else.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
    timeout: seconds(60),
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') results.consoleErrors = [...(results.consoleErrors ?? []), message.text()].slice(-20);
  });
  const shoot = async (name) => {
    const file = path.join(config.screenshots, `${name}.png`);
    await page.screenshot({ path: file, timeout: seconds(20) }).catch((error) => log(`screenshot failed: ${error}`));
    return file;
  };
  try {
    try {
      await openWorkbench(page);
    } catch (error) {
      results.error = `the workbench did not load: ${error.message}`;
      results.screenshot = await shoot('workbench');
      return;
    }
    for (const scenario of config.scenarios) {
      const record = { started: Date.now() };
      results.scenarios[scenario.name] = record;
      log(`scenario ${scenario.name}`);
      try {
        await scenarios[scenario.kind](page, scenario, record);
        record.ok = true;
      } catch (error) {
        record.error = error.stack ?? String(error);
        record.screenshot = await shoot(scenario.name);
        record.text = await editorText(page).catch(() => null);
        log(`scenario ${scenario.name} failed: ${error.message}`);
      }
      record.seconds = (Date.now() - record.started) / 1000;
      write();
      // Next scenario from a clean slate: no dialogs, no open editors.
      await page.keyboard.press('Escape');
      await runCommand(page, 'View: Close All Editors').catch((error) => log(`closing editors: ${error.message}`));
    }
  } finally {
    write();
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
