/**
 * The web console from the outside: the real broker process (`pnpm start`)
 * serving the built console, headless Chromium driven by playwright-core (one
 * browser context per person), and a real sshd as the OT asset. Every step
 * asserts what the person sees on the page; what ran on the asset is read
 * from the asset's own shell history. Screenshots of each main screen go to
 * test-output/screenshots/ for a reviewer.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base32Decode, totpCode } from '@airlock/crypto';
import { createEmptyDatabase, startSshd, type SshdFixture } from '@airlock/test-support';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  createSshAsset,
  createUser,
  endedSession,
  grantAccess,
  expectStatus,
  randomPassword,
  signIn,
  type SignedIn,
  type SshAsset,
} from './support/airlock.js';
import {
  killBroker,
  REPO_ROOT,
  runCli,
  spawnBroker,
  type BrokerProcess,
} from './support/broker.js';
import { apiClient, type ApiClient } from './support/http.js';

const LONG = 180_000;
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(REPO_ROOT, 'test-output', 'screenshots');
/** Markup that must stay text wherever a person typed it. */
const XSS_DESCRIPTION = 'HMI <img src=x onerror="window.__xss = \'asset\'"> of line 3';
const XSS_REASON =
  'Replace the HMI panel <script>window.__xss = "reason"</script><img src=x onerror="window.__xss = \'img\'">';

const STEP_MS = 30_000;
/** The last TOTP time step each user spent: a code is accepted once only. */
const spentSteps = new Map<string, number>();

/**
 * A code the broker has not seen yet: the next time step (accepted one step
 * early), after waiting when even that one was spent.
 */
async function freshCode(person: SignedIn): Promise<string> {
  const spent = spentSteps.get(person.id) ?? Math.floor(Date.now() / STEP_MS);
  while (Math.floor(Date.now() / STEP_MS) + 1 <= spent)
    await new Promise((resolve) => setTimeout(resolve, 500));
  const step = Math.floor(Date.now() / STEP_MS) + 1;
  spentSteps.set(person.id, step);
  return totpCode(person.totpSecret!, step * STEP_MS);
}

/**
 * Key by key at machine speed, each key its own WebSocket message: Enter
 * arrives before the echo of the keys just before it, and the gateway must
 * wait for that echo before it records the line (the command audited must be
 * the command the asset runs).
 */
async function typeLikeAPerson(page: Page, text: string): Promise<void> {
  await page.keyboard.type(text);
}

/** What a terminal (xterm.js) shows, as text. */
async function screenOf(page: Page, testId: string): Promise<string> {
  const text = await page.getByTestId(testId).locator('.xterm-rows').innerText();
  return text.replace(/\u00a0/g, ' ');
}

async function waitForScreen(
  page: Page,
  testId: string,
  pattern: RegExp | string,
  timeoutMs = 20_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await screenOf(page, testId).catch(() => '');
    if (typeof pattern === 'string' ? last.includes(pattern) : pattern.test(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the terminal ${testId} never showed ${String(pattern)}; it shows:\n${last}`);
}

/** No script ran and no markup was made from what people typed or the asset printed. */
async function expectNoInjection(page: Page): Promise<void> {
  expect(await page.evaluate('typeof window.__xss')).toBe('undefined');
  expect(await page.locator('main img[src="x"], main script').count()).toBe(0);
}

describe('web console, end to end with the real broker and Chromium', () => {
  let dataDir = '';
  let database: { url: string; drop(): Promise<void> } | null = null;
  let sshd: SshdFixture | null = null;
  let broker: BrokerProcess | null = null;
  let browser: Browser | null = null;
  let api: ApiClient;
  let admin: SignedIn;
  let alice: SignedIn; // approver, TOTP enrolled
  let dana: SignedIn; // auditor
  let vera: SignedIn; // vendor
  let asset: SshAsset;
  const contexts: BrowserContext[] = [];

  const screenshot = async (page: Page, name: string): Promise<void> => {
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  };

  const openAs = async (
    person: SignedIn,
    options: { totp?: boolean } = {},
  ): Promise<{ page: Page; context: BrowserContext }> => {
    const context = await browser!.newContext({ viewport: { width: 1280, height: 860 } });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(broker!.httpUrl);
    await page.getByLabel('Username').fill(person.username);
    await page.getByLabel('Password').fill(person.password);
    if (options.totp === true) await page.getByLabel(/One-time code/).fill(await freshCode(person));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect
      .poll(() => page.getByTestId('signed-in-as').textContent(), { timeout: 15_000 })
      .toContain(person.username);
    return { page, context };
  };

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    dataDir = await mkdtemp(join(tmpdir(), 'airlock-e2e-console-'));
    database = await createEmptyDatabase();
    const env = {
      DATABASE_URL: database.url,
      AIRLOCK_ADMIN_PASSWORD: randomPassword(),
      AIRLOCK_MASTER_KEY: randomBytes(32).toString('base64'),
    };
    sshd = await startSshd();
    broker = await spawnBroker({ dataDir, env });
    api = apiClient(broker.httpUrl);
    admin = await signIn(api, 'admin', env.AIRLOCK_ADMIN_PASSWORD);
    alice = await createUser(api, admin, { username: 'alice', roles: ['approver'] });
    dana = await createUser(api, admin, { username: 'dana', roles: ['auditor'] });
    vera = await createUser(api, admin, {
      username: 'vera',
      roles: ['vendor'],
      organization: 'Nordwerk <b>Automation</b>',
    });
    asset = await createSshAsset(api, admin, alice, sshd, 'hmi-01');
    // Asset names are DNS labels; the free-text description carries the markup instead.
    const described = await fetch(`${broker.httpUrl}/api/v1/assets/${asset.assetId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ description: XSS_DESCRIPTION }),
    });
    expect(described.status).toBe(200);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // playwright-core starts Chromium with a fresh temporary profile (user data dir) of its own.
      args: ['--no-sandbox', '--disable-background-networking'],
    });
  }, LONG);

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await killBroker(broker);
    await sshd?.stop();
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  it(
    'a vendor requests, an approver approves with a fresh code, the vendor works in the browser terminal, the approver watches and terminates, the auditor replays and finds the command',
    async () => {
      // The approver already has the queue open (their first screen), empty for now.
      const approver = await openAs(alice, { totp: true });
      await expect
        .poll(() => approver.page.getByText('No requests are waiting for you').count())
        .toBe(1);

      // --- the vendor asks for access -------------------------------------------
      const vendor = await openAs(vera);
      await vendor.page.goto(`${broker!.httpUrl}/#/request`);
      await vendor.page.getByLabel(/hmi-01/).check();
      expect(await vendor.page.getByTestId('asset-description').textContent()).toContain(
        XSS_DESCRIPTION,
      );
      const limits = vendor.page.getByTestId('zone-limits');
      await expect.poll(() => limits.textContent()).toContain('1 approval needed');
      expect(await limits.textContent()).toContain('allows shell, exec');
      await vendor.page.getByLabel('Minutes').fill('90');
      await vendor.page.getByLabel('Reason').fill(XSS_REASON);
      await vendor.page.getByLabel(/Ticket/).fill('WO-4711');
      await screenshot(vendor.page, '01-vendor-request-form');
      await vendor.page.getByRole('button', { name: 'Send request' }).click();
      await expect
        .poll(() => vendor.page.getByRole('status').first().textContent())
        .toMatch(/Request sent \(req_[0-9a-z]+\)/);
      // …and it reaches the approver's open queue by itself, pushed within seconds
      // (the console's fallback poll is 30 s).
      const sentAt = Date.now();
      const pending = approver.page.getByTestId('pending-request').first();
      await expect.poll(() => pending.count(), { timeout: 8_000, interval: 100 }).toBe(1);
      expect(Date.now() - sentAt).toBeLessThan(8_000);
      expect(await pending.textContent()).toContain('vera');

      await vendor.page.goto(`${broker!.httpUrl}/#/my-requests`);
      const myRequest = vendor.page.getByTestId('request-card').first();
      await expect.poll(() => myRequest.textContent()).toContain('pending');
      // The reason is shown as the vendor typed it: text, not markup.
      expect(await myRequest.textContent()).toContain('<script>window.__xss = "reason"</script>');
      await expectNoInjection(vendor.page);

      // --- the approver decides, in a second browser -----------------------------
      expect(await pending.textContent()).toContain('Nordwerk <b>Automation</b>');
      expect(await pending.getByTestId('request-reason').textContent()).toBe(XSS_REASON);
      expect(await pending.textContent()).toContain('First request from this user');
      await expectNoInjection(approver.page);
      // The whole decision works from the keyboard: focus, Enter, type, Enter.
      await pending.getByRole('button', { name: 'Approve…' }).focus();
      await approver.page.keyboard.press('Enter');
      const code = pending.getByLabel(/one-time code/);
      await code.focus();
      // The decision needs a fresh code: the one used to sign in is spent.
      await approver.page.keyboard.type(totpCode(alice.totpSecret!, Date.now() - 30_000));
      await approver.page.keyboard.press('Enter');
      await expect
        .poll(() => pending.getByRole('alert').textContent())
        .toContain('was not accepted');
      await pending.getByLabel(/one-time code/).fill(await freshCode(alice));
      await screenshot(approver.page, '02-approver-queue');
      // Approvers are often on a phone on the plant floor: the same screen, narrow.
      await approver.page.setViewportSize({ width: 390, height: 844 });
      await screenshot(approver.page, '02b-approver-queue-phone');
      await approver.page.setViewportSize({ width: 1280, height: 860 });
      await code.focus();
      await approver.page.keyboard.press('Enter');
      await expect
        .poll(() => approver.page.getByText('No requests are waiting for you').count())
        .toBe(1);

      // --- the vendor connects in the browser -------------------------------------
      await vendor.page.goto(`${broker!.httpUrl}/#/grants`);
      const grant = vendor.page.getByTestId('grant-card').first();
      await expect.poll(() => grant.textContent(), { timeout: 10_000 }).toContain('active');
      expect(await grant.getByTestId('countdown').textContent()).toMatch(/^1 h (29|30) min left$/);
      const sshPort = broker!.sshAddress!.slice(broker!.sshAddress!.lastIndexOf(':') + 1);
      expect(await grant.getByTestId('ssh-command').textContent()).toBe(
        `ssh -p ${sshPort} vera+hmi-01@127.0.0.1`,
      );
      await screenshot(vendor.page, '03-vendor-grants');
      await grant.getByRole('link', { name: 'Open terminal on hmi-01' }).click();
      await waitForScreen(vendor.page, 'terminal', 'asset$ ');
      expect(await vendor.page.getByTestId('terminal-status').textContent()).toMatch(
        /Connected to hmi-01 · session ses_[0-9a-z]+/,
      );
      await vendor.page.getByTestId('terminal').click();
      await typeLikeAPerson(vendor.page, 'echo console-$((6*7))\n');
      await waitForScreen(vendor.page, 'terminal', /console-42\s/);
      // Escape sequences and markup from the asset stay inside the terminal, as text.
      await typeLikeAPerson(
        vendor.page,
        "printf '\\033]0;<script>window.__xss=1</script>\\007\\033]8;;javascript:window.__xss=2\\033\\\\link\\033]8;;\\033\\\\ <img src=x onerror=window.__xss=3>\\n'\n",
      );
      await waitForScreen(vendor.page, 'terminal', 'link <img src=x onerror=window.__xss=3>');
      // Clicking the OSC 8 link does nothing: no navigation, no script.
      await vendor.page
        .getByTestId('terminal')
        .locator('.xterm-rows > div')
        .filter({ hasText: /^link / })
        .click({ position: { x: 8, y: 6 }, force: true });
      expect(vendor.page.url()).toBe(`${broker!.httpUrl}/#/connect/${asset.assetId}`);
      await expectNoInjection(vendor.page);
      expect(await vendor.page.title()).toBe('Airlock');
      await screenshot(vendor.page, '04-vendor-terminal');

      // --- the approver watches live, then terminates -----------------------------
      await approver.page.goto(`${broker!.httpUrl}/#/live`);
      const row = approver.page.getByTestId('live-session').first();
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('vera');
      expect(await row.textContent()).toContain('browser from 127.0.0.1');
      await row.getByRole('link', { name: 'Watch' }).click();
      await waitForScreen(approver.page, 'live-terminal', /console-42\s/);
      // What the vendor types now appears in the live view as it happens.
      await typeLikeAPerson(vendor.page, 'echo watched-$((7*6))-live\n');
      await waitForScreen(vendor.page, 'terminal', /watched-42-live\s/);
      const seenAt = Date.now();
      await waitForScreen(approver.page, 'live-terminal', /watched-42-live\s/, 5_000);
      expect(Date.now() - seenAt).toBeLessThan(3_000);
      await expectNoInjection(approver.page);
      await screenshot(approver.page, '05-approver-live-view');
      const terminateClicked = Date.now();
      await approver.page.getByRole('button', { name: 'Terminate session' }).click();
      await expect
        .poll(() => vendor.page.getByTestId('terminal-status').textContent(), { timeout: 5_000 })
        .toBe('The session has ended.');
      expect(Date.now() - terminateClicked).toBeLessThan(3_000);
      await waitForScreen(vendor.page, 'terminal', /terminated/i, 5_000);
      await expect
        .poll(() => approver.page.getByTestId('session-ended').textContent(), { timeout: 10_000 })
        .toContain('terminated');
      await expect
        .poll(() => approver.page.getByTestId('live-status').textContent())
        .toContain('The session has ended (terminated)');
      await screenshot(vendor.page, '06-vendor-terminal-terminated');

      // The commands ran on the real asset, and the session is a web session from the browser.
      const history = await sshd!.historyLog();
      expect(history).toContain('echo console-$((6*7))');
      expect(history).toContain('echo watched-$((7*6))-live');
      const sessions = await api.get(`/api/v1/sessions?userId=${vera.id}`, admin.token);
      expect(sessions.body.sessions).toHaveLength(1);
      const session = sessions.body.sessions[0];
      expect(session.protocol).toBe('web');
      expect(session.clientAddress).toBe('127.0.0.1');
      expect(session.clientVersion).toContain('Chrome');
      expect((await endedSession(api, admin, session.id)).endReason).toBe('terminated');

      // --- the auditor finds the command and replays the session ------------------
      const auditor = await openAs(dana);
      await auditor.page.goto(`${broker!.httpUrl}/#/sessions`);
      const sessionRow = auditor.page.getByTestId('session-row').first();
      await expect.poll(() => sessionRow.textContent()).toContain('terminated');
      expect(await sessionRow.textContent()).toContain('hmi-01');
      await screenshot(auditor.page, '07-auditor-sessions');

      await auditor.page.goto(`${broker!.httpUrl}/#/commands`);
      await auditor.page.getByLabel('Words in the command').fill('watched');
      await auditor.page.getByRole('button', { name: 'Search' }).click();
      const found = auditor.page.getByTestId('command-row');
      await expect.poll(() => found.count()).toBe(1);
      expect(await found.first().textContent()).toContain('echo watched-$((7*6))-live');
      await screenshot(auditor.page, '08-auditor-command-search');
      await found
        .first()
        .getByRole('link', { name: /Replay at/ })
        .click();

      const commands = auditor.page.getByRole('complementary', { name: 'Commands' });
      await expect.poll(() => commands.getByRole('button').count()).toBe(3);
      // Clicking a command jumps to that moment: its output is on the replayed screen.
      await commands.getByRole('button', { name: /echo console/ }).click();
      const atFirst = await waitForScreen(auditor.page, 'replay-terminal', /console-42\s/);
      expect(atFirst).not.toContain('watched-42-live');
      await commands.getByRole('button', { name: /echo watched/ }).click();
      await waitForScreen(auditor.page, 'replay-terminal', /watched-42-live\s/);
      // Back to the first command, then play at 8×: the rest of the session plays out.
      await commands.getByRole('button', { name: /echo console/ }).click();
      expect(await waitForScreen(auditor.page, 'replay-terminal', /console-42\s/)).not.toContain(
        'watched-42-live',
      );
      await auditor.page.getByLabel('Speed').selectOption('8');
      await auditor.page.getByRole('button', { name: 'Play' }).click();
      await expect.poll(() => auditor.page.getByRole('button', { name: 'Pause' }).count()).toBe(1);
      await waitForScreen(auditor.page, 'replay-terminal', /watched-42-live\s/, 15_000);
      await expect
        .poll(() => auditor.page.getByRole('button', { name: 'Play' }).count(), {
          timeout: 15_000,
        })
        .toBe(1);
      await expectNoInjection(auditor.page);
      await screenshot(auditor.page, '09-auditor-replay');

      // The export is one file an outside auditor checks without an account or database.
      const downloading = auditor.page.waitForEvent('download');
      await auditor.page.getByRole('link', { name: 'Export for an outside auditor' }).click();
      const exportFile = join(dataDir, 'session-export.json');
      await (await downloading).saveAs(exportFile);
      const verified = await runCli(['verify-export', exportFile], { dataDir });
      expect(verified.stdout).toContain(`export of ${session.id} is intact`);
      expect(verified.code).toBe(0);
      const bundle = JSON.parse(await readFile(exportFile, 'utf8'));
      expect(bundle.commands.map((c: { command: string }) => c.command)).toContain(
        'echo watched-$((7*6))-live',
      );
      // An edited command, in the list or in its audit event, is caught.
      bundle.commands[0].command = 'echo nothing-to-see';
      await writeFile(exportFile, JSON.stringify(bundle));
      const tampered = await runCli(['verify-export', exportFile], { dataDir });
      expect(tampered.code).toBe(1);
      expect(tampered.stdout).toContain('FAIL commands');
      expect(tampered.stdout).toContain('export is NOT intact');

      await auditor.page.goto(`${broker!.httpUrl}/#/audit`);
      await auditor.page.getByRole('button', { name: 'Verify the trail' }).click();
      await expect
        .poll(() => auditor.page.getByTestId('verify-result').textContent())
        .toMatch(/^Intact: \d+ events/);
      await expect.poll(() => auditor.page.getByTestId('audit-row').count()).toBeGreaterThan(10);
      await screenshot(auditor.page, '10-auditor-audit-trail');
    },
    LONG,
  );

  it(
    'gives the browser terminal the same window-change, zone rules, expiry warning and expiry as SSH',
    async () => {
      const patched = await fetch(`${broker!.httpUrl}/api/v1/zones/${asset.zoneId}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          policy: {
            commandRules: [
              { pattern: 'rm\\s+-rf', action: 'block', description: 'no recursive deletes' },
            ],
          },
        }),
      });
      expect(patched.status).toBe(200);
      const eve = await createUser(api, admin, {
        username: 'eve',
        roles: ['vendor'],
        organization: 'Nordwerk Automation',
      });
      await grantAccess(api, eve, alice, asset, { notAfter: new Date(Date.now() + 35_000) });

      const { page } = await openAs(eve);
      await page.goto(`${broker!.httpUrl}/#/connect/${asset.assetId}`);
      await waitForScreen(page, 'terminal', 'asset$ ');
      // Under five minutes left from the start: warned at once, in the terminal.
      await waitForScreen(page, 'terminal', /Access to hmi-01 ends in \d+ seconds/, 5_000);
      await page.getByTestId('terminal').click();
      // A narrower window reaches the asset's shell as an SSH window-change.
      await typeLikeAPerson(page, 'echo cols=$(tput cols)\n');
      const wide = Number(
        /cols=(\d+)\s/.exec(await waitForScreen(page, 'terminal', /cols=\d+\s/))![1],
      );
      await page.setViewportSize({ width: 700, height: 700 });
      await typeLikeAPerson(page, 'clear; echo narrow=$(tput cols)\n');
      const narrow = Number(
        /narrow=(\d+)\s/.exec(await waitForScreen(page, 'terminal', /narrow=\d+\s/))![1],
      );
      expect(narrow).toBeLessThan(wide);
      expect(narrow).toBeGreaterThan(20);
      await typeLikeAPerson(page, 'rm -rf /tmp/airlock-console-test\n');
      await waitForScreen(page, 'terminal', 'Blocked by zone policy (no recursive deletes)');
      expect(await sshd!.historyLog()).not.toContain('rm -rf /tmp/airlock-console-test');
      await screenshot(page, '15-vendor-terminal-warned-and-blocked');

      // The window closes by itself: the session ends at notAfter, as over SSH.
      await expect
        .poll(() => page.getByTestId('terminal-status').textContent(), { timeout: 40_000 })
        .toBe('The session has ended.');
      const sessions = await api.get(`/api/v1/sessions?userId=${eve.id}`, admin.token);
      const ended = await endedSession(api, admin, sessions.body.sessions[0].id);
      expect(ended.endReason).toBe('expired');
      const blocked = await api.get(
        `/api/v1/sessions/${sessions.body.sessions[0].id as string}/commands`,
        admin.token,
      );
      expect(blocked.body.commands.map((c: any) => [c.command, c.outcome])).toEqual([
        ['echo cols=$(tput cols)', 'forwarded'],
        ['clear; echo narrow=$(tput cols)', 'forwarded'],
        ['rm -rf /tmp/airlock-console-test', 'blocked'],
      ]);
    },
    LONG,
  );

  it(
    'ends a browser terminal when its sign-in ends (signing out in another tab)',
    async () => {
      const otto = await createUser(api, admin, {
        username: 'otto',
        roles: ['vendor'],
        organization: 'Nordwerk Automation',
      });
      await grantAccess(api, otto, alice, asset);
      const { page, context } = await openAs(otto);
      await page.goto(`${broker!.httpUrl}/#/connect/${asset.assetId}`);
      await waitForScreen(page, 'terminal', 'asset$ ');
      const other = await context.newPage();
      await other.goto(broker!.httpUrl);
      await other.getByRole('button', { name: 'Sign out' }).click();
      await expect
        .poll(() => page.getByTestId('terminal-status').textContent(), { timeout: 8_000 })
        .toBe('The session has ended.');
      const sessions = await api.get(`/api/v1/sessions?userId=${otto.id}`, admin.token);
      const ended = await endedSession(api, admin, sessions.body.sessions[0].id);
      expect(ended.endReason).toBe('client_exit');
      expect(ended.endDetail).toBe('signed out of the console');
    },
    LONG,
  );

  it(
    "revokes a grant from the approver's live screen, ending the vendor's browser terminal at once",
    async () => {
      const ida = await createUser(api, admin, {
        username: 'ida',
        roles: ['vendor'],
        organization: 'Nordwerk Automation',
      });
      await grantAccess(api, ida, alice, asset);
      const vendor = await openAs(ida);
      await vendor.page.goto(`${broker!.httpUrl}/#/connect/${asset.assetId}`);
      await waitForScreen(vendor.page, 'terminal', 'asset$ ');

      const approver = await openAs(alice, { totp: true });
      await approver.page.goto(`${broker!.httpUrl}/#/live`);
      const grantRow = approver.page.getByTestId('active-grant').filter({ hasText: 'ida' });
      await expect.poll(() => grantRow.count()).toBe(1);
      const clicked = Date.now();
      await grantRow.getByRole('button', { name: 'Revoke' }).click();
      await waitForScreen(vendor.page, 'terminal', /revoked/i, 5_000);
      await expect
        .poll(() => vendor.page.getByTestId('terminal-status').textContent(), { timeout: 5_000 })
        .toBe('The session has ended.');
      expect(Date.now() - clicked).toBeLessThan(3_000);
      await expect.poll(() => grantRow.count(), { timeout: 5_000 }).toBe(0);
      const sessions = await api.get(`/api/v1/sessions?userId=${ida.id}`, admin.token);
      expect((await endedSession(api, admin, sessions.body.sessions[0].id)).endReason).toBe(
        'revoked',
      );
    },
    LONG,
  );

  it(
    'lets an admin set up a zone, its policy and approvers, an asset with a write-only credential, a connector and a user',
    async () => {
      const { page } = await openAs(admin, { totp: true });
      const zoneName = 'Water works <script>window.__xss = "zone"</script>';
      await page.goto(`${broker!.httpUrl}/#/zones`);
      await page.getByRole('form', { name: 'New zone' }).getByLabel('Name').fill(zoneName);
      await page.getByRole('button', { name: 'Create zone' }).click();
      const zoneCard = page.getByTestId('zone-card').filter({ hasText: 'Water works' });
      await expect.poll(() => zoneCard.count()).toBe(1);
      expect(await zoneCard.getByRole('heading').textContent()).toBe(zoneName);
      await zoneCard.getByLabel('Approvals needed').fill('2');
      await zoneCard.getByLabel('Longest window (minutes)').fill('240');
      await zoneCard.getByLabel('sftp').check();
      await zoneCard.getByLabel('alice').check();
      await zoneCard.getByRole('button', { name: 'Save zone' }).click();
      await expect.poll(() => zoneCard.getByRole('status').textContent()).toBe('Saved.');
      const zones = await api.get('/api/v1/zones', admin.token);
      const zone = (zones.body.zones as any[]).find((z) => z.name === zoneName);
      expect(zone.policy.requiredApprovals).toBe(2);
      expect(zone.policy.maxWindowMinutes).toBe(240);
      expect(zone.policy.allowedCapabilities).toContain('sftp');
      expect(zone.approverIds).toEqual([alice.id]);
      await expectNoInjection(page);
      await screenshot(page, '11-admin-zones');

      const credential = `pw-${randomBytes(8).toString('hex')}`;
      await page.goto(`${broker!.httpUrl}/#/assets`);
      const newAsset = page.getByRole('form', { name: 'New asset' });
      await newAsset.getByLabel('Name (DNS label)').fill('pump-07');
      await newAsset.getByLabel('Zone').selectOption({ label: zoneName });
      await newAsset.getByLabel('Host', { exact: true }).fill('10.20.0.7');
      await newAsset.getByLabel('Port', { exact: true }).fill('22');
      await newAsset.getByLabel('Login', { exact: true }).fill('maint');
      await newAsset.getByLabel(/Credential/).fill(credential);
      await newAsset.getByLabel(/Pinned host key/).fill(sshd!.hostPublicKey);
      await newAsset.getByRole('button', { name: 'Create asset' }).click();
      const assetRow = page.getByTestId('asset-row').filter({ hasText: 'pump-07' });
      await expect.poll(() => assetRow.textContent()).toContain('stored (write-only)');
      // Write-only: the credential is nowhere on the page once stored.
      expect(await page.content()).not.toContain(credential);
      await screenshot(page, '12-admin-assets');

      await page.goto(`${broker!.httpUrl}/#/connectors`);
      const newConnector = page.getByRole('form', { name: 'New connector' });
      await newConnector.getByLabel('Name (DNS label)').fill('conn-water-01');
      await newConnector.getByLabel('Zone').selectOption({ label: zoneName });
      await newConnector.getByRole('button', { name: /Create and get an enrolment token/ }).click();
      await expect
        .poll(() => page.getByTestId('enrolment-token').textContent())
        .toContain('conn-water-01');
      const connectorRow = page.getByTestId('connector-row').filter({ hasText: 'conn-water-01' });
      await expect.poll(() => connectorRow.textContent()).toContain('pending');
      await screenshot(page, '13-admin-connectors');

      await page.goto(`${broker!.httpUrl}/#/users`);
      const newUser = page.getByRole('form', { name: 'New user' });
      await newUser.getByLabel('Username').fill('viktor');
      await newUser.getByLabel('Initial password').fill(randomPassword());
      await newUser.getByLabel('Organisation').fill('Pumpen & Söhne');
      await newUser.getByRole('button', { name: 'Create user' }).click();
      const userRow = page.getByTestId('user-row').filter({ hasText: 'viktor' });
      await expect.poll(() => userRow.textContent()).toContain('Pumpen & Söhne');
      expect(await userRow.textContent()).toContain('vendor');
      expect(await page.getByText(/Organisations:/).textContent()).toContain('Pumpen & Söhne');
      await expectNoInjection(page);
      await screenshot(page, '14-admin-users');
    },
    LONG,
  );

  it(
    'enrols TOTP with a QR code at first sign-in, and explains wrong credentials and the lockout plainly',
    async () => {
      const password = randomPassword();
      expectStatus(
        await api.post(
          '/api/v1/users',
          { username: 'bruno', password, roles: ['approver'] },
          admin.token,
        ),
        201,
        'create bruno',
      );
      const context = await browser!.newContext();
      contexts.push(context);
      const page = await context.newPage();
      await page.goto(broker!.httpUrl);
      await page.getByLabel('Username').fill('bruno');
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      // An approver must enrol before anything else: QR code and the key as text.
      await expect
        .poll(() => page.getByRole('heading', { name: 'Set up two-factor sign-in' }).count())
        .toBe(1);
      const qr = page.getByRole('img', { name: 'QR code for your authenticator app' });
      await expect.poll(() => qr.getAttribute('src')).toMatch(/^data:image\/png;base64,/);
      const secret = base32Decode((await page.getByTestId('totp-secret').textContent())!);
      await screenshot(page, '16-totp-enrolment');
      await page.getByLabel('Code from the app').fill('000000');
      await page.getByRole('button', { name: 'Confirm' }).click();
      await expect.poll(() => page.getByRole('alert').textContent()).toContain('not valid');
      await page.getByLabel('Code from the app').fill(totpCode(secret, Date.now()));
      await page.getByRole('button', { name: 'Confirm' }).click();
      await expect.poll(() => page.getByTestId('signed-in-as').textContent()).toContain('bruno');
      await page.getByRole('button', { name: 'Sign out' }).click();

      // Wrong credentials, then the lockout, each said plainly.
      for (let attempt = 1; attempt <= 5; attempt += 1) {
        await page.getByLabel('Username').fill('bruno');
        await page.getByLabel('Password').fill(`wrong-${attempt}`);
        const answered = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/login'));
        await page.getByRole('button', { name: 'Sign in' }).click();
        expect((await answered).status()).toBe(401);
        await expect.poll(() => page.getByRole('alert').textContent()).toContain('is not right');
        if (attempt === 1) await screenshot(page, '17-sign-in-error');
      }
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expect
        .poll(() => page.getByRole('alert').textContent())
        .toMatch(/Sign-in is locked for this account until/);
      await screenshot(page, '18-sign-in-locked');
    },
    LONG,
  );

  it(
    'refuses a cross-site WebSocket and a cross-site form post, and serves the console under a strict CSP',
    async () => {
      const login = expectStatus(
        await api.post('/api/v1/auth/login', { username: vera.username, password: vera.password }),
        200,
        'sign in',
      );
      const cookie = `airlock_session=${login.body.token as string}`;
      const wsBase = broker!.httpUrl.replace(/^http/, 'ws');
      const upgrade = (path: string, headers: Record<string, string>) =>
        new Promise<number>((resolve, reject) => {
          const ws = new WebSocket(`${wsBase}${path}`, { headers });
          ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
          ws.once('open', () => {
            ws.close();
            resolve(101);
          });
          ws.once('error', reject);
        });
      const terminal = `/api/v1/assets/${asset.assetId}/terminal`;
      // A page on another site opening the terminal with the vendor's cookie: refused.
      expect(await upgrade(terminal, { cookie, origin: 'http://evil.example' })).toBe(403);
      expect(await upgrade(terminal, { cookie })).toBe(403); // no Origin at all
      // Same origin without a session: refused too.
      expect(await upgrade(terminal, { origin: broker!.httpUrl })).toBe(401);
      // Same origin, signed in, but no active grant any more (revoked below): refused.
      const grants = await api.get(`/api/v1/grants?userId=${vera.id}`, admin.token);
      for (const g of grants.body.grants as { id: string; status: string }[])
        if (g.status === 'active')
          await api.post(`/api/v1/grants/${g.id}/revoke`, { reason: 'test' }, admin.token);
      expect(await upgrade(terminal, { cookie, origin: broker!.httpUrl })).toBe(403);
      const refusals = await api.get('/api/v1/audit?type=auth.permission_denied', admin.token);
      expect(
        (refusals.body.events as { data: { reason?: string } }[]).some(
          (e) => e.data.reason === 'cross_origin_websocket',
        ),
      ).toBe(true);

      // A form on another site posting with the cookie: refused, nothing changed.
      const form = await fetch(`${broker!.httpUrl}/api/v1/requests`, {
        method: 'POST',
        headers: {
          cookie,
          origin: 'http://evil.example',
          'content-type': 'application/json',
        },
        body: JSON.stringify({ assetIds: [asset.assetId], durationMinutes: 5, reason: 'csrf' }),
      });
      expect(form.status).toBe(403);
      expect(((await form.json()) as { error: { code: string } }).error.code).toBe(
        'auth.csrf_failed',
      );
      const requests = await api.get('/api/v1/requests', login.body.token as string);
      expect(
        (requests.body.requests as { reason: string }[]).some((r) => r.reason === 'csrf'),
      ).toBe(false);

      // A browser on another site (localhost is not the site 127.0.0.1) submitting a form
      // to sign the vendor out: the cookie stays home (SameSite=Strict), nothing happens.
      const { page } = await openAs(vera);
      const evil = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(
          `<form id="f" method="post" action="${broker!.httpUrl}/api/v1/auth/logout"></form>` +
            '<script>document.getElementById("f").submit()</script>',
        );
      });
      await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = evil.address() as AddressInfo;
        const answered = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/logout'));
        await page.goto(`http://localhost:${port}/`);
        expect((await answered).status()).toBe(401);
      } finally {
        evil.close();
      }
      await page.goto(broker!.httpUrl);
      await expect
        .poll(() => page.getByTestId('signed-in-as').textContent(), { timeout: 10_000 })
        .toContain('vera');

      const index = await fetch(broker!.httpUrl);
      expect(index.status).toBe(200);
      const csp = index.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
      expect(index.headers.get('x-content-type-options')).toBe('nosniff');
      expect(index.headers.get('referrer-policy')).toBe('same-origin');
      const html = await index.text();
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    },
    LONG,
  );
});
