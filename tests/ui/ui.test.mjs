// ui.test.mjs -- the web UI driven in headless Chromium (playwright-core,
// Debian's /usr/bin/chromium) against a real `churn serve` that
// tests/ui/test_ui.py started.
//
// Environment (set by test_ui.py): UI_URL (http://127.0.0.1:PORT),
// UI_USERS (JSON {role: [user, password]}), UI_BATCH (a CSV file to
// upload), UI_BATCH_BAD (one with a misspelt header), UI_BATCH_BIG (one
// over the body limit), UI_OUT (a directory for the downloaded results),
// UI_WEB (web/, to count its files), UI_SHOTS (where the screenshots go),
// CHROMIUM (the browser, default /usr/bin/chromium).
//
// Each check is printed as one JSON line {"name", "ok", "detail"}, which
// test_ui.py counts; anything else on stdout is ignored by it.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const BASE = process.env.UI_URL;
const USERS = JSON.parse(process.env.UI_USERS);
const OUT = process.env.UI_OUT;
const SHOTS = process.env.UI_SHOTS;
const BATCH = process.env.UI_BATCH;

function check(name, ok, detail) {
  process.stdout.write(JSON.stringify({ name, ok: !!ok, detail: ok ? '' : String(detail ?? '') }) + '\n');
  return !!ok;
}

// A direct API call from Node, to check what the server holds.
async function api(method, path, token, body) {
  const r = await fetch(BASE + path, {
    method,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, doc: await r.json() };
}

async function login(page, role, password) {
  await page.fill('#login-user', USERS[role][0]);
  await page.fill('#login-pass', password ?? USERS[role][1]);
  await page.click('#login-form button[type=submit]');
}

// Asks test_ui.py to restart the server with a new token secret (same
// port, same store) and waits until it has.
const stdinLines = createInterface({ input: process.stdin });
function restartServer() {
  return new Promise((resolve, reject) => {
    stdinLines.once('line', resolve);
    stdinLines.once('close', () => reject(new Error('test_ui.py went away during the restart')));
    process.stdout.write(JSON.stringify({ restart: true }) + '\n');
  });
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(SHOTS, `ui-${name}.png`), fullPage });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // No sandbox: the tests may run as root in a container, where Chromium's
  // sandbox cannot start. The page is our own, on loopback.
  // A small /dev/shm (containers) is not enough for Chromium's shared memory.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const problems = []; // console errors, page errors, CSP violations
try {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 800 } });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.setDefaultTimeout(15000);
  const loads = []; // [path, status] of every response, for the counts below
  page.on('response', (r) => loads.push([new URL(r.url()).pathname, r.status()]));

  // ---- the page and login ------------------------------------------------------
  const first = await page.goto(BASE + '/');
  const h = first.headers();
  check('GET / answers the page with the security headers', first.status() === 200
    && /script-src 'self'/.test(h['content-security-policy'] || '') && h['x-frame-options'] === 'DENY',
  JSON.stringify(h));
  await page.waitForSelector('#login-form');
  await page.waitForLoadState('networkidle');
  const files = readdirSync(process.env.UI_WEB).length;
  const firstLoad = loads.filter(([p]) => p === '/' || p.startsWith('/ui/'));
  check(`the first visit loads the ${files} files of web/, each once, all 200`,
    firstLoad.length === files && new Set(firstLoad.map(([p]) => p)).size === files
    && firstLoad.every(([, st]) => st === 200), JSON.stringify(firstLoad));
  await shot(page, 'login');

  await login(page, 'analyst', 'not-the-password');
  await page.waitForSelector('#login-error:not(:empty)');
  check('a wrong password is refused with a message',
    (await page.textContent('#login-error')).includes('Wrong user name or password'),
    await page.textContent('#login-error'));

  await login(page, 'analyst');
  await page.waitForSelector('#who:not([hidden])');
  check('the analyst is logged in and the role shown',
    (await page.textContent('#who-role')) === 'analyst', await page.textContent('#who-role'));
  const nav = await page.$$eval('#nav a', (as) => as.map((a) => a.dataset.view));
  check('the analyst\'s nav has the views the role may use, not users or audit',
    nav.join(',') === 'predict,batch,models,monitor,rollouts', nav.join(','));
  const stored = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  check('nothing is kept in localStorage, sessionStorage or cookies',
    stored[0] === 0 && stored[1] === 0 && stored[2] === '', JSON.stringify(stored));

  // ---- single prediction --------------------------------------------------------
  await page.waitForSelector('#pred-form');
  const fields = await page.$$eval('#pred-form [name]', (es) => es.map((e) => e.name));
  check('the form has a field per input column of the schema, not the target',
    fields.includes('tenure') && fields.includes('Contract') && fields.includes('customerID')
    && !fields.includes('Churn') && fields.length === 20, fields.join(','));
  const contract = await page.$$eval('#f-Contract option', (os) => os.map((o) => o.value));
  check('categorical fields offer the schema\'s categories, and a missing value where it may be',
    contract.join('|') === 'Month-to-month|One year|Two year|', contract.join('|'));
  check('numeric fields carry the schema\'s range',
    (await page.getAttribute('#f-tenure', 'max')) === '600', await page.getAttribute('#f-tenure', 'max'));
  await page.fill('#f-customerID', 'UI-0001');
  await page.fill('#f-tenure', '2');
  await page.fill('#f-MonthlyCharges', '95.5');
  await page.fill('#f-TotalCharges', '191');
  await page.selectOption('#f-Contract', 'Month-to-month');
  await page.selectOption('#f-InternetService', 'Fiber optic');
  await page.selectOption('#f-PaymentMethod', 'Electronic check');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/v1/predict?')),
    page.click('#pred-form button[type=submit]'),
  ]);
  const pred = await resp.json();
  await page.waitForSelector('#pred-prob');
  const shown = await page.textContent('#pred-prob');
  check('predict: the form posts k=3&actions=2 and the page shows the probability',
    resp.status() === 200 && resp.url().endsWith('/v1/predict?k=3&actions=2')
    && shown === (pred.probability * 100).toFixed(1) + '%', `${resp.status()} ${shown} ${JSON.stringify(pred)}`);
  const sent = JSON.parse(resp.request().postData());
  check('predict: the body has typed values (numbers, booleans, categories)',
    sent.tenure === 2 && sent.MonthlyCharges === 95.5 && sent.SeniorCitizen === false
    && sent.Contract === 'Month-to-month' && sent.customerID === 'UI-0001', JSON.stringify(sent));
  const reasons = await page.$$eval('#pred-reasons tbody tr', (rs) => rs.length);
  check('predict: three reasons shown', reasons === 3 && pred.reasons.length === 3, reasons);
  const actions = await page.$$('#pred-actions tbody tr');
  check('predict: the what-if actions shown (at most 2)',
    actions.length === (pred.actions || []).length && actions.length <= 2 && actions.length > 0,
    `${actions.length} ${JSON.stringify(pred.actions)}`);
  check('predict: the risk band shown',
    (await page.textContent('#pred-result .score')).includes(pred.risk_band + ' risk'),
    await page.textContent('#pred-result .score'));
  await shot(page, 'predict');

  await page.selectOption('#fb-churned', 'true');
  await page.fill('#fb-date', '2026-12-01');
  const [fresp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/feedback')),
    page.click('#fb-form button[type=submit]'),
  ]);
  await page.waitForSelector('#fb-status .ok');
  const fsent = JSON.parse(fresp.request().postData());
  check('predict: the outcome is recorded as feedback on this prediction (201)',
    fresp.status() === 201 && fsent.prediction_id === pred.prediction_id && fsent.churned === true
    && fsent.observed_date === '2026-12-01'
    && (await page.textContent('#fb-status .ok')) === 'recorded: churned', JSON.stringify(fsent));
  process.stdout.write(JSON.stringify({ feedback: pred.prediction_id }) + '\n');

  await page.fill('#f-tenure', '-3');
  await page.click('#pred-form button[type=submit]');
  await page.waitForSelector('#pred-error .error');
  const perr = await page.textContent('#pred-error .error');
  check('predict: an out-of-range value shows the server\'s 422 and marks the field',
    perr.startsWith('422') && perr.includes('tenure')
    && (await page.getAttribute('#f-tenure', 'class') || '').includes('bad'), perr);
  await page.fill('#f-tenure', '2');

  // ---- batch --------------------------------------------------------------------
  await page.click('#nav a[data-view=batch]');
  await page.waitForSelector('#batch-file');
  await page.setInputFiles('#batch-file', BATCH);
  // Upload throttled to 64 KiB/s so that the file takes about a second to
  // go up and the progress bar has steps to show; every value it takes is
  // recorded.
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 64 * 1024 });
  await page.evaluate(() => {
    window.progressSeen = [];
    const bar = document.getElementById('batch-progress');
    new MutationObserver(() => window.progressSeen.push(bar.value))
      .observe(bar, { attributes: true, attributeFilter: ['value'] });
  });
  const [bresp] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/v1/predict/batch')),
    page.click('#batch-upload'),
  ]);
  await page.waitForSelector('#batch-summary');
  // The answer's body is not read here (the inspector does not keep large
  // bodies); test_ui.py compares the download with the API's own answer.
  const csvLines = readFileSync(BATCH, 'utf8').trim().split('\n').length - 1;
  check('batch: the CSV went as text/csv and was answered 200',
    bresp.status() === 200 && bresp.request().headers()['content-type'] === 'text/csv',
    `${bresp.status()} ${JSON.stringify(bresp.request().headers())}`);
  const progress = await page.$eval('#batch-progress', (p) => [p.value, p.max]);
  check('batch: the progress bar is full once scored', progress[0] === 1 && progress[1] === 1
    && (await page.textContent('#batch-progress-text')).startsWith('scored'), JSON.stringify(progress));
  const seen = await page.evaluate(() => window.progressSeen);
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  check('batch: the progress bar moved through the upload (values between 0 and 1)',
    seen.some((v) => v > 0 && v < 1) && seen[seen.length - 1] === 1, JSON.stringify(seen));
  await shot(page, 'batch');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#batch-download')]);
  const dlPath = join(OUT, dl.suggestedFilename());
  await dl.saveAs(dlPath);
  const rows = readFileSync(dlPath, 'utf8').trim().split('\r\n');
  check('batch: the download is a CSV with a header and one line per input row',
    rows[0].startsWith('row,customer_id,probability,label,risk_band') && rows.length === csvLines + 1
    && dl.suggestedFilename() === 'batch.predictions.csv', `${rows.length} ${rows[0]} ${dl.suggestedFilename()}`);
  const nErr = rows.slice(1).filter((r) => r.includes(',unprocessable,')).length;
  const summary = await page.textContent('#batch-summary');
  check('batch: the summary counts the rows and those not scored',
    summary.startsWith(`${csvLines} rows:`) && summary.includes(`${nErr} not scored`) && nErr === 1, summary);
  process.stdout.write(JSON.stringify({ download: dlPath }) + '\n');

  await page.setInputFiles('#batch-file', process.env.UI_BATCH_BAD);
  await page.click('#batch-upload');
  await page.waitForSelector('#batch-result .error');
  const berr = await page.textContent('#batch-result .error');
  check('batch: a misspelt header shows the server\'s 400 naming the column, and no download',
    berr === "400 bad_request: CSV header: unknown column 'tenur'" && (await page.$('#batch-download')) === null
    && (await page.textContent('#batch-progress-text')) === '', berr);
  await page.setInputFiles('#batch-file', process.env.UI_BATCH_BIG);
  await page.click('#batch-upload');
  await page.waitForSelector('#batch-result .error');
  const big = await page.textContent('#batch-result .error');
  check('batch: a file over the body limit shows the server\'s 413',
    big === '413 payload_too_large: request body over the limit of 1048576 bytes', big);

  // ---- registry as analyst: read only; the server refuses a promotion ----------------
  await page.click('#nav a[data-view=models]');
  await page.waitForSelector('#models-table');
  check('models: the analyst sees the versions but no promote or rollback buttons',
    (await page.$$('#models-table tbody tr')).length === 2 && (await page.$$('button.promote')).length === 0
    && (await page.$('#rollback')) === null && (await page.$('#models-readonly')) !== null, '');
  // What a button would do, from the page's own API module and token: the
  // server's answer is the refusal, whatever the page shows.
  const refused = await page.evaluate(async () => {
    const api = await import('/ui/api.js');
    try {
      await api.call('POST', '/v1/models/2/promote', { force: true });
      return { status: 200 };
    } catch (e) {
      return { status: e.status, text: e.toString() };
    }
  });
  check('models: the server refuses the analyst\'s promotion with 403',
    refused.status === 403 && refused.text.includes("role 'analyst' may not models:write"),
    JSON.stringify(refused));
  // ---- monitoring and rollouts as analyst: read only ------------------------------------
  const tokA = (await api('POST', '/v1/auth/token', '', { username: USERS.analyst[0], password: USERS.analyst[1] })).doc.access_token;
  const drift = (await api('GET', '/v1/monitor/drift', tokA)).doc.result;
  await page.click('#nav a[data-view=monitor]');
  await page.waitForSelector('#drift-table');
  const bars = await page.$$eval('#mon-drift svg.chart', (ss) => ss[0].querySelectorAll('rect.bar').length);
  const alertBars = await page.$$eval('#mon-drift svg.chart rect.bar.alert', (rs) => rs.length);
  check('monitoring: a PSI bar per feature, the drifted ones in alert colour',
    bars === drift.columns.length && alertBars === drift.drifted.length && alertBars >= 1,
    `${bars} bars, ${alertBars} alert, drifted ${drift.drifted}`);
  const mc = drift.columns.find((c) => c.name === 'MonthlyCharges');
  const mcRow = await page.$$eval('#drift-table tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  const shownRow = mcRow.find((r) => r[0] === 'MonthlyCharges');
  check('monitoring: the price rise shows as drift of MonthlyCharges with the server\'s PSI',
    shownRow && shownRow[5] === 'drift' && shownRow[2] === String(Number(mc.psi.toFixed(4))) && mc.status === 'drift',
    JSON.stringify(shownRow) + ' ' + mc.psi);
  check('monitoring: score drift, decay and the estimate are shown',
    (await page.textContent('#mon-score')).startsWith('PSI ')
    && (await page.$$('#mon-decay svg.chart path.line')).length === 2
    && (await page.textContent('#mon-estimate')).includes('estimated ROC AUC')
    && (await page.$$('#mon-estimate svg.chart circle')).length >= 1, '');
  check('monitoring: no run button for the analyst', (await page.$('#mon-run')) === null, '');
  await shot(page, 'monitor');
  await page.click('#nav a[data-view=rollouts]');
  await page.waitForSelector('#ro-current');
  const roText = await page.textContent('#ro-current');
  const checks = await page.$$('#ro-checks tbody tr');
  check('rollouts: the shadow rollout with its steps, arms and gate checks',
    roText.includes('v2 against champion v1') && roText.includes('shadow') && checks.length >= 5
    && (await page.$$('#ro-arms tbody tr')).length === 2, `${roText.slice(0, 200)} ${checks.length}`);
  check('rollouts: no pause or abort for the analyst',
    (await page.$('#ro-pause')) === null && (await page.$('#ro-abort')) === null, '');
  await shot(page, 'rollouts');

  // A view the nav hides, opened by its address: the page shows the 403.
  const [aresp] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/v1/audit')),
    page.evaluate(() => { location.hash = '#audit'; }),
  ]);
  await page.waitForSelector('[data-view=audit] .error');
  const aerr = await page.textContent('[data-view=audit] .error');
  check('audit by address as analyst: the server says 403 and the page shows its message',
    aresp.status() === 403 && aerr === "403 forbidden: role 'analyst' may not audit", `${aresp.status()} ${aerr}`);
  await shot(page, 'refused');

  // ---- logout; the token lived in the page only ---------------------------------------
  await page.click('#logout');
  await page.waitForSelector('#login-view:not([hidden])');
  const after = await page.evaluate(async () => (await import('/ui/api.js')).session());
  check('logout: the login form is back and the page holds no session',
    after === null && (await page.isHidden('#nav')), JSON.stringify(after));

  await login(page, 'scientist');
  await page.waitForSelector('#who:not([hidden])');
  const before = loads.length;
  await page.reload();
  await page.waitForSelector('#login-form');
  await page.waitForLoadState('networkidle');
  const again = loads.slice(before).filter(([p]) => p === '/' || p.startsWith('/ui/'));
  // Chromium asks for the page itself afresh on a reload; the script
  // modules and the style sheet it revalidates.
  check('a reload revalidates the scripts and the style sheet: 304',
    again.length === files && again.every(([p, st]) => st === 304 || (p === '/' && st === 200)),
    JSON.stringify(again));
  check('a reload logs out (the token was in memory only)',
    await page.isVisible('#login-view') && await page.isHidden('#who'), '');

  // ---- rollouts and monitoring as scientist: pause, resume, abort; run now ----------------
  await login(page, 'scientist');
  await page.waitForSelector('#who:not([hidden])');
  const tokS = (await api('POST', '/v1/auth/token', '', { username: USERS.scientist[0], password: USERS.scientist[1] })).doc.access_token;
  const roState = async () => (await api('GET', '/v1/rollouts', tokS)).doc[0].state;
  await page.evaluate(() => { location.hash = '#rollouts'; });
  for (const [button, want] of [['#ro-pause', 'paused'], ['#ro-resume', 'shadow'], ['#ro-abort', 'aborted']]) {
    await page.click(button);
    // A locator, not waitForFunction: that evaluates a string, which the CSP refuses.
    await page.locator('#ro-status .ok', { hasText: new RegExp(': ' + want + '$') }).waitFor();
    const st = await roState();
    check(`rollouts: ${button.slice(4)} from the page; the server has it ${want}`, st === want, st);
  }
  check('rollouts: an ended rollout has no buttons', (await page.$('#ro-pause, #ro-resume, #ro-abort')) === null, '');
  await page.evaluate(() => { location.hash = '#monitor'; });
  await page.waitForSelector('#mon-run');
  const [rresp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/monitor/run')),
    page.click('#mon-run'),
  ]);
  await page.waitForSelector('#mon-status .ok');
  check('monitoring: the scientist starts a run (202)', rresp.status() === 202, rresp.status());

  // ---- registry as scientist: promote v2, as admin: roll back --------------------------
  await page.evaluate(() => { location.hash = '#models'; });
  await page.waitForSelector('button.promote[data-version="2"]');
  await page.check('#promote-force');
  await page.fill('#promote-reason', 'promoted from the UI test');
  await page.click('button.promote[data-version="2"]');
  await page.waitForSelector('#models-status .ok');
  const pmsg = await page.textContent('#models-status .ok');
  let list = (await api('GET', '/v1/models', tokS)).doc;
  const champ = () => list.find((m) => (m.aliases || []).includes('champion'))?.version;
  check('models: the scientist promotes v2 and the server has it as champion',
    pmsg.startsWith('v2 is champion') && champ() === 2, `${pmsg} champion v${champ()}`);
  await page.waitForSelector('button.promote[data-version="1"]');
  check('models: the table follows (v1 promotable, v2 not)',
    (await page.$('button.promote[data-version="2"]')) === null, '');
  await shot(page, 'models');
  await page.click('#logout');

  await login(page, 'admin');
  await page.waitForSelector('#who:not([hidden])');
  const anav = await page.$$eval('#nav a', (as) => as.map((a) => a.dataset.view));
  check('the admin\'s nav has users and audit', anav.includes('users') && anav.includes('audit'), anav.join(','));
  await page.evaluate(() => { location.hash = '#models'; });
  await page.waitForSelector('#rollback');
  await page.click('#rollback');
  await page.waitForSelector('#models-status .ok');
  list = (await api('GET', '/v1/models', tokS)).doc;
  check('models: the admin rolls back and v1 is champion again',
    (await page.textContent('#models-status .ok')).includes('v1 is champion') && champ() === 1,
    `${await page.textContent('#models-status .ok')} champion v${champ()}`);

  // ---- audit as admin: the promotion and rollback with their actors ----------------------
  await page.evaluate(() => { location.hash = '#audit'; });
  await page.waitForSelector('#audit-table');
  const audit = await page.$$eval('#audit-table tbody tr', (rs) => rs.map((r) => r.textContent));
  check('audit: the UI\'s promotion (scientist, with its reason) and rollback (admin) are listed',
    audit.some((t) => t.includes(USERS.scientist[0]) && t.includes('promote') && t.includes('promoted from the UI test'))
    && audit.some((t) => t.includes(USERS.admin[0]) && t.includes('rollback')), audit.slice(0, 3).join(' | '));
  await shot(page, 'audit', false); // the first screen: the log is long

  // ---- users and keys as admin ---------------------------------------------------------
  await page.evaluate(() => { location.hash = '#users'; });
  await page.waitForSelector('#users-table');
  await page.fill('#user-name', 'ui-analyst');
  await page.fill('#user-pass', 'ui-analyst-pass-1');
  await page.selectOption('#user-role', 'analyst');
  await page.click('#user-form button');
  await page.waitForSelector('#admin-status .ok');
  const users = await page.$$eval('#users-table tbody tr', (rs) => rs.map((r) => r.textContent));
  check('users: the admin creates a user and it is listed',
    users.some((t) => t.startsWith('ui-analystanalyst')), users.join(' | '));
  await page.fill('#key-label', 'ui-crm');
  await page.click('#key-form button');
  await page.waitForSelector('#new-key');
  const key = await page.textContent('#new-key');
  const kr = await fetch(BASE + '/v1/schema', { headers: { 'X-API-Key': key } });
  check('keys: the new key is shown once and authenticates', key.startsWith('chk_') && kr.status === 200,
    `${key} ${kr.status}`);
  await shot(page, 'users');
  await page.click('#keys-table button.revoke');
  await page.waitForSelector('#admin-status .ok');
  const kr2 = await fetch(BASE + '/v1/schema', { headers: { 'X-API-Key': key } });
  check('keys: revoking it from the page makes the server refuse it', kr2.status === 401, kr2.status);
  await page.click('#logout');

  // The new user logs in with the password set in the page.
  await page.fill('#login-user', 'ui-analyst');
  await page.fill('#login-pass', 'ui-analyst-pass-1');
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#who:not([hidden])');
  check('the user made in the page logs in with its role',
    (await page.textContent('#who-role')) === 'analyst' && (await page.textContent('#who-name')) === 'ui-analyst', '');
  await page.click('#logout');

  // ---- the server restarts with a new token secret: the session ends ------------------
  await login(page, 'analyst');
  await page.waitForSelector('#who:not([hidden])');
  await restartServer();
  await page.click('#nav a[data-view=models]');
  await page.waitForSelector('#login-view:not([hidden])');
  const ended = await page.textContent('#login-error');
  check('a token the server no longer takes ends the session: the login form, with the 401',
    ended.startsWith('Your session ended (401 unauthorized:') && (await page.isHidden('#nav')), ended);
  await login(page, 'analyst');
  await page.waitForSelector('#models-table, #pred-form');
  check('logging in again works, and the error is gone',
    (await page.textContent('#who-role')) === 'analyst' && (await page.textContent('#login-error')) === '', '');
  await page.click('#logout');

  // The browser logs every refused request; these are the ones the test
  // provoked (wrong password, out-of-range value, the analyst twice).
  const failedLoads = [];
  const other = problems.filter((p) => {
    const m = p.match(/^console: Failed to load resource: the server responded with a status of (\d+)/);
    if (m) failedLoads.push(m[1]);
    return !m;
  });
  check('the only failed requests are the ones provoked (401, 422, 400, 413, 403, 403, 401)',
    failedLoads.join(',') === '401,422,400,413,403,403,401', failedLoads.join(','));
  check('no other console errors, no page errors or CSP violations', other.length === 0, other.join(' | '));
} catch (e) {
  check('the browser session ran to the end', false, e.stack || e);
} finally {
  stdinLines.close();
  await browser.close();
}
