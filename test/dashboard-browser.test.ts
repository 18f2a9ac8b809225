/**
 * The classroom page in a real browser (Chromium, through playwright-core): the issue's
 * acceptance run (five daytime clients, each connection's server side in TIME_WAIT with its
 * countdown, no reload), and a client's markup shown as text. Skips where chromium is missing.
 *
 * DASHBOARD_SCREENSHOT=docs/dashboard.png saves the page as the daytime test leaves it (the
 * picture in docs/dashboard.md is made this way).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { platform } from 'node:os';
import test from 'node:test';
import type { Page } from 'playwright-core';
import { browserMissing, openBrowser } from './helpers/browser.js';
import { LAB_CLIENT, run, startServerProcess, type RunningServer } from './helpers/cli.js';

const skip = browserMissing || (platform() === 'linux' ? false : 'kernel states need Linux /proc/net/tcp');
// Generous: on a loaded 2-core machine a kernel-state report may come seconds after the close.
const PAGE_DEADLINE_MS = 60_000;

/** The page's problems: a dialog (alert() run by injected markup), a script error, a refused script or style. */
function watchForTrouble(page: Page): string[] {
  const trouble: string[] = [];
  page.on('dialog', (dialog) => {
    trouble.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on('pageerror', (error) => trouble.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') trouble.push(`console: ${message.text()}`);
  });
  return trouble;
}

/**
 * Runs `lab-server <args> --dashboard 127.0.0.1:0`, opens its page in a fresh browser once the page
 * is live, and calls `use` with both; stops them after, pass or fail.
 */
async function withDashboardPage(args: string[], use: (server: RunningServer, page: Page, trouble: string[]) => Promise<void>): Promise<void> {
  const server = await startServerProcess([...args, '--dashboard', '127.0.0.1:0']);
  const browser = await openBrowser();
  try {
    const page = await browser.context.newPage();
    const trouble = watchForTrouble(page);
    await page.goto(String((await server.event('dashboard')).url));
    await page.locator('#status.live').waitFor({ timeout: PAGE_DEADLINE_MS });
    await use(server, page, trouble);
  } finally {
    await browser.close();
    await server.stop();
  }
}

test('five daytime clients: five connections with their socket pairs, each server side in TIME_WAIT counting down, without a reload', { skip }, () =>
  withDashboardPage(['daytime'], async (server, page, trouble) => {
    for (let i = 0; i < 5; i++) {
      const client = await run(LAB_CLIENT, ['daytime', '127.0.0.1', String(server.port)]);
      assert.equal(client.code, 0, client.stderr);
    }
    const clients = server.lines.filter((line) => line.event === 'accepted').map((line) => String(line.remote));
    assert.equal(clients.length, 5);
    const rows = page.locator('#connections tbody tr');
    for (const client of clients) {
      const row = rows.filter({ hasText: client });
      await row.locator('td.st-TIME_WAIT').waitFor({ timeout: PAGE_DEADLINE_MS }).catch(async (error: Error) => {
        const kernel = server.lines.filter((line) => line.event === 'kernel-state').map((line) => line.msg);
        throw new Error(`${error.message}\nthe table:\n${await page.locator('#connections tbody').innerText()}\nthe log:\n${kernel.join('\n')}\npage status: ${await page.locator('#status').textContent()}`);
      });
      assert.equal(await row.locator('td.pair').nth(1).textContent(), `127.0.0.1:${server.port}`);
      assert.match((await row.locator('td.st').textContent())!, /^TIME_WAIT \d+(\.\d)? s left$/);
    }
    assert.equal(await rows.count(), 5);
    const timeWait = page.locator('#diagram g[data-state="TIME_WAIT"] .count');
    assert.equal(await timeWait.textContent(), '5');
    // The countdown moves on by itself: the page is not reloaded.
    const first = rows.filter({ hasText: clients[0]! }).locator('td.st');
    const before = await first.textContent();
    await rows.filter({ hasText: clients[0]! }).filter({ hasNotText: before! }).waitFor({ timeout: PAGE_DEADLINE_MS });
    // Selecting a connection draws its ladder and marks its path in the diagram.
    await rows.filter({ hasText: clients[4]! }).click();
    await page.locator('#ladder-title', { hasText: "inferred from the server's events" }).waitFor({ timeout: PAGE_DEADLINE_MS });
    await page.locator('#ladder text', { hasText: 'TIME_WAIT' }).first().waitFor({ timeout: PAGE_DEADLINE_MS });
    assert.match((await page.locator('#diagram g[data-state="TIME_WAIT"]').getAttribute('class'))!, /server-path/);
    assert.match((await page.locator('#diagram g[data-state="SYN_SENT"]').getAttribute('class'))!, /client-path/);
    if (process.env.DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });
    assert.deepEqual(trouble, []);
  }),
);

test("an echo client's <img onerror> and <script> are shown as text: no element is made, no script runs", { skip }, () =>
  withDashboardPage(['echo'], async (server, page, trouble) => {
    const hostile = ['<img src=x onerror=alert(1)>', '<script>alert(2)</script>'];
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    await once(socket, 'connect');
    socket.end(hostile.map((line) => `${line}\n`).join(''));
    socket.resume();
    await once(socket, 'close');
    for (const line of hostile) {
      await page.locator('#events li', { hasText: `message: ${line}` }).waitFor({ timeout: PAGE_DEADLINE_MS });
      await page.locator('#connections td.lines', { hasText: line }).waitFor({ timeout: PAGE_DEADLINE_MS });
    }
    assert.equal(await page.locator('img').count(), 0, 'no <img> element');
    assert.equal(await page.locator('script').count(), 1, 'only the page\'s own script');
    assert.deepEqual(trouble, [], 'no dialog, no error');
  }),
);
