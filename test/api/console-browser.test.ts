// The site console in a real browser: Debian's Chromium driven by playwright-core (nothing is downloaded; it
// is skipped where /usr/bin/chromium is missing: `apt-get install chromium`, as .ci/packages.d/console says).
// A simulated four-host site (the demo's paper site) with simulated Ganglia metrics, the API on a random
// loopback port; the test logs in, migrates a VM through the console with its plan shown first, follows it
// until the console says it converged, resizes one with consent to its restart, reads a VM's graph, and
// checks the page with axe-core; and a failed job's banner goes away after Retry in the console.
// Screenshots go to a temporary folder; XSM_SCREENSHOT_DIR=docs/img refreshes the README's.

import test from 'ava';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestSite } from '../integration/harness.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { simulatedMetricsFeed } from '../../src/demo/simulated-metrics.ts';
import { enqueueApply } from '../../src/services/site-service.ts';

const CHROMIUM = '/usr/bin/chromium';
const withChromium = existsSync(CHROMIUM) ? test.serial : test.skip;
if (!existsSync(CHROMIUM)) console.log(`console browser test skipped: no ${CHROMIUM} (apt-get install chromium)`);

const ADMIN = 'console-admin-token-0123456789';
const DOM0S = ['192.168.5.101', '192.168.5.102', '192.168.5.103', '192.168.5.104'];
const require = createRequire(import.meta.url);
const paper = readFileSync(new URL('../../src/demo/paper-site.xml', import.meta.url), 'utf8');

async function consoleSite(t: import('ava').ExecutionContext) {
  const s = await startTestSite(DOM0S.map((name) => ({ name, memMiB: 1536, cpus: 4 })));
  const feed = simulatedMetricsFeed(s.hv, s.rt.metrics);
  const api = await startApi({
    rt: s.rt,
    tokens: new TokenTable([{ token: ADMIN, role: 'admin', name: 'ada' }]),
    log: silentLogger,
  });
  t.teardown(async () => {
    await feed.stop();
    await api.close();
    await s.close();
  });
  await s.waitConverged(await s.submitAndApply(paper));
  feed.start(250);
  return { s, api };
}

const shots = process.env.XSM_SCREENSHOT_DIR ?? join(tmpdir(), 'xsm-console-shots');

/** Chromium, logged in as the admin, on the console (reached through bull-board's link back). */
async function openConsole(t: import('ava').ExecutionContext, url: string) {
  mkdirSync(shots, { recursive: true });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  // Errors the console page logs; bull-board's page (where an admin's login lands) is not ours to judge.
  page.on('console', (m) => {
    if (m.type() === 'error' && page.url().includes('/admin/site'))
      problems.push(`console: ${m.text()} ${m.location().url}`);
  });
  page.on('pageerror', (e) => problems.push(`page: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`);
  });

  await page.goto(`${url}/admin/login`);
  await page.fill('#token', ADMIN);
  await Promise.all([page.waitForURL(/\/admin\/queues/), page.click('button')]);
  // bull-board links back to the console (in its header's menu of links).
  await page.locator('ul[class^="actions"] > li').last().click();
  await Promise.all([page.waitForURL(/\/admin\/site$/), page.getByText('Site console').click()]);
  problems.length = 0;
  await page.reload();
  return { page, problems, shots };
}

withChromium(
  'an admin logs in, migrates a VM after seeing its plan, resizes one with consent, and reads its graph',
  async (t) => {
    t.timeout(90_000);
    const { s, api } = await consoleSite(t);
    const { page, problems, shots } = await openConsole(t, api.url);

    // The demo's four VMs, each where the paper puts it, and the way to the job dashboard for an admin.
    await page.waitForSelector('#vms tbody tr[data-vm="vm4"]');
    t.deepEqual(await page.$$eval('#vms tbody tr', (rows) => rows.map((r) => r.getAttribute('data-vm'))), [
      'vm1',
      'vm2',
      'vm3',
      'vm4',
    ]);
    t.true(await page.isVisible('a#queues[href="/admin/queues"]'));
    await page.waitForSelector('#live:text("live")');

    // Migrate: the plan is shown before anything is stored; a live migration has nothing disruptive.
    await page.click('#vms tr[data-vm="vm1"] button:text("Migrate")');
    await page.selectOption('#mig-to', '192.168.5.102');
    await page.waitForSelector('#mig-plan li:has-text("migrate:vm1")');
    t.is(await page.locator('#mig-plan li.disruptive').count(), 0);
    t.regex((await page.textContent('#mig-plan li')) ?? '', /no downtime.*migrate:vm1 \(live\)/);
    t.is(await s.rt.sites.currentVersion(), 1, 'the preview stored nothing');
    await page.screenshot({ path: join(shots, 'console-migrate.png') });
    await page.click('#mig-go');

    // Followed live until the console says so, and the VM's row shows where it runs.
    await page.waitForSelector('#following[data-done="yes"]', { timeout: 30_000 });
    t.regex((await page.textContent('#following')) ?? '', /version 2 converged/);
    const row = page.locator('#vms tr[data-vm="vm1"]');
    await page.waitForFunction(() =>
      document.querySelector('#vms tr[data-vm="vm1"] td[data-label="Running on"]')?.textContent?.includes('.102'),
    );
    t.is(await row.locator('td.sync').textContent(), 'in sync');
    t.is((await s.where()).vm1, '192.168.5.102');

    // Resizing beyond what vm4 can take live: the plan marks the restart, and nothing goes without consent.
    await page.click('#vms tr[data-vm="vm4"] button:text("Resize")');
    await page.fill('#rs-mem', '512');
    await page.click('#rs-plan');
    const restart = page.locator('#mig-plan li.disruptive');
    await restart.waitFor();
    t.regex((await restart.textContent()) ?? '', /^DISRUPTIVEreconfigure:vm4 \(restart\): vm4 is shut down/);
    t.true(await page.isDisabled('#mig-go'), 'no resize without consent');
    await page.screenshot({ path: join(shots, 'console-consent.png') });
    await page.check('#mig-consent');
    await page.click('#mig-go');
    await page.waitForSelector('#following:has-text("version 3 converged")', { timeout: 30_000 });
    t.is(await page.textContent('#vms tr[data-vm="vm4"] td[data-label="MEM / vCPUs"]'), '512 MiB / 4');
    t.is((await s.rt.sites.history())[0]?.reason, 'reconfigure vm4: MEM 96->512 MiB');

    // A VM's graphs: axes with tick labels, a unit, and points.
    await row.locator('button:text("Graphs")').click();
    const cpu = page.locator('svg.chart[data-metric="vm_cpu_pct"]');
    await cpu.waitFor();
    await page.waitForFunction(
      () => Number(document.querySelector('svg.chart[data-metric="vm_cpu_pct"]')?.getAttribute('data-points')) >= 3,
    );
    t.regex((await cpu.locator('text.title').textContent()) ?? '', /CPU use \(%\)/);
    t.true((await cpu.locator('.axis.y text.tick').count()) >= 2, 'y tick labels');
    t.true((await cpu.locator('.axis.x text.tick').count()) >= 2, 'x tick labels');
    for (const tick of await cpu.locator('.axis.x text.tick').allTextContents()) t.regex(tick, /^\d\d:\d\d(:\d\d)?$/);
    t.true((await cpu.locator('circle.pt').count()) >= 3, 'data points');
    await page.click('.range button:text("5 min")');
    t.is(await page.getAttribute('.range button:text("5 min")', 'aria-pressed'), 'true');

    // Accessibility: no serious or critical violation (axe-core, evaluated outside the page's CSP).
    await page.evaluate(readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));
    const violations = await page.evaluate(async () => {
      const r = await (
        window as unknown as {
          axe: { run(): Promise<{ violations: { id: string; impact: string; help: string; nodes: unknown[] }[] }> };
        }
      ).axe.run();
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
    });
    t.deepEqual(
      violations.filter((v) => v.impact === 'serious' || v.impact === 'critical'),
      [],
      JSON.stringify(violations),
    );

    await page.screenshot({ path: join(shots, 'console.png'), fullPage: true });
    await page.setViewportSize({ width: 375, height: 812 });
    await page.waitForTimeout(200);
    // Usable at 375 px: nothing wider than the screen.
    t.true(await page.evaluate(() => document.documentElement.scrollWidth <= 375), 'no horizontal scrolling');
    await page.screenshot({ path: join(shots, 'console-375.png'), fullPage: true });
    for (const f of ['console.png', 'console-375.png', 'console-migrate.png', 'console-consent.png'])
      t.true(statSync(join(shots, f)).size > 10_000, f);

    t.deepEqual(problems, [], 'the page logged no errors');
  },
);

withChromium('a failed job raises a banner, and Retry in the console finishes it once the cause is gone', async (t) => {
  t.timeout(90_000);
  const { s, api } = await consoleSite(t);
  const { page, problems } = await openConsole(t, api.url);
  await page.waitForSelector('#vms tbody tr[data-vm="vm4"]');
  // vm5 is planned onto .101 while it has room; then something outside XSM takes the room, and the apply runs.
  const vm5 =
    '<VM name="vm5" config="apache_svr"><DOM0>192.168.5.101</DOM0><VCPUS>1</VCPUS>' +
    '<HWADDR>AA:00:00:00:00:05</HWADDR><IP>DHCP</IP><MEM>256</MEM></VM>\n  </Set>';
  const v = await s.submitAndApply(paper.replace('</Set>', vm5), undefined, 'add vm5', { apply: false });
  const host = s.hv.get('192.168.5.101')!;
  await host.create({ name: 'intruder', text: 'name = "intruder"\nmemory = 1400\nvcpus = 1\n' });
  await enqueueApply(s.rt, v, 'test');

  const failed = page.locator('#banners .banner.bad');
  await failed.waitFor({ timeout: 30_000 });
  t.regex((await failed.textContent()) ?? '', new RegExp(`^1 failed job: v${v}-create-vm5 \\(.+\\)`));
  t.regex((await page.textContent('#banners .banner.warn')) ?? '', /1 VM is out of sync: vm5/);
  await page.screenshot({ path: join(shots, 'console-failed.png') });

  await host.destroy('intruder');
  await page.click('#jobs li:has-text("create vm5") button:text("Retry")');
  await page.waitForSelector('#jobmsg:has-text("retrying")');
  await page.waitForSelector('#banners .banner.bad', { state: 'detached', timeout: 30_000 });
  await page.waitForSelector('#vms tr[data-vm="vm5"] td.sync:text("in sync")', { timeout: 30_000 });
  t.is((await s.where()).vm5, '192.168.5.101');
  t.deepEqual(problems, [], 'the page logged no errors');
});

withChromium(
  'an operator drains a host from the console after its pre-check, then undrains it with return',
  async (t) => {
    t.timeout(90_000);
    const { s, api } = await consoleSite(t);
    const { page, problems } = await openConsole(t, api.url);
    const host = '192.168.5.101';
    const row = page.locator(`#hosts tr[data-host="${host}"]`);
    await row.waitFor();
    const before = await s.where();
    const leaving = Object.keys(before).filter((vm) => before[vm] === host);
    t.true(leaving.length > 0, `${host} runs VMs to move`);

    // The pre-check and the plan come first; nothing is stored until the button is pressed.
    await row.locator('button:text("Drain")').click();
    await page.waitForSelector('#dr-check li.move');
    t.deepEqual(
      (await page.locator('#dr-check li.move').allTextContents()).map(
        (x) => x.replace(/^(live|COLD)/, '').split(':')[0],
      ),
      leaving,
    );
    t.is(await page.locator('#dr-check li.blocker').count(), 0);
    t.is(await s.rt.sites.currentVersion(), 1, 'the pre-check stored nothing');
    const cold = await page.locator('#dr-check li.cold').count();
    if (cold) {
      // Cold moves stop VMs: the button waits for consent.
      t.true(await page.isDisabled('#dr-go'));
      await page.check('#dr-consent');
    }
    await page.click('#dr-go');
    await page.waitForSelector('#following[data-done="yes"]', { timeout: 30_000 });
    t.regex((await page.textContent('#following')) ?? '', /drain 192\.168\.5\.101: version 2 converged/);
    await page.waitForSelector(`#hosts tr[data-host="${host}"] td[data-label="Health"]:has-text("maintenance")`);
    const drained = await s.where();
    t.deepEqual(
      leaving.filter((vm) => drained[vm] === host),
      [],
      'every VM left the host',
    );

    // Undrain: the button says so now; with return (the default) the VMs come back.
    await row.locator('button:text("Undrain")').click();
    await page.waitForSelector('#dr-check li.move');
    t.true(await page.isChecked('#dr-return'));
    if (await page.isVisible('#dr-consent-row')) await page.check('#dr-consent');
    await page.click('#dr-go');
    await page.waitForSelector('#following[data-done="yes"]:has-text("version 3")', { timeout: 30_000 });
    const back = await s.where();
    t.deepEqual(
      leaving.filter((vm) => back[vm] !== host),
      [],
      'every VM came back',
    );
    t.deepEqual(problems, [], 'the page logged no errors');
  },
);
