// The seeds' workflows, end to end: Debian's chromium (headless, driven by playwright-core)
// against a real `portcullis server` (HTTPS, its self-signed certificate, embedded SQLite)
// and a real `portcullis agent` enrolled into it, enforcing on a tmpfs this test mounts and
// marks alone. The agent stops by itself (--exit-after) and runs under `timeout -s KILL`.
//
// Needs root. Environment: PORTCULLIS_BIN (the binary), PORTCULLIS_FIXTURES (fixture
// directory), PORTCULLIS_SCREENSHOTS (where every page is kept; default target/e2e-screenshots).
//
// Order: b (ThreatLocker: permit + built-in [Reported] deny above it), then a (Airlock:
// blocklist package approved at the root; its metadata rule then denies every 3CXDesktopApp
// build, so it runs after b), then c (hygiene), then d (accounts and the signing key).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import https from 'node:https';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const BIN = process.env.PORTCULLIS_BIN ?? path.join(ROOT, 'target/debug/portcullis');
const FIXTURES = process.env.PORTCULLIS_FIXTURES ?? path.join(ROOT, 'target/fixtures');
const SHOTS = process.env.PORTCULLIS_SCREENSHOTS ?? path.join(ROOT, 'target/e2e-screenshots');
const PASSWORD = 'e2e admin password';

const work = mkdtempSync(path.join(tmpdir(), 'portcullis-e2e-'));
const mnt = path.join(work, 'mnt');
let server, agent, browser, page, base, port;
let shot = 0;

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

async function until(what, check, ms = 10000) {
  const t0 = Date.now();
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Exec a file as a user would and say what the kernel answered: "ran" (exit 0), "EPERM"
// (the agent denied it) or "ENOEXEC" (allowed, but a Windows program cannot run on Linux).
const EXEC = `
import errno, os, sys
try:
    os.execv(sys.argv[1], [sys.argv[1]])
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
`;
function run(name) {
  const r = spawnSync('timeout', ['-s', 'KILL', '20', 'python3', '-c', EXEC, path.join(mnt, name)], { encoding: 'utf8' });
  const out = (r.stdout ?? '').trim();
  if (r.status === 0 && out === '') return 'ran';
  return out || `exit ${r.status}`;
}

async function snap(name) {
  shot += 1;
  const file = path.join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

// The REST API over HTTPS, checking the server's certificate, for the setup a person would
// have done before.
function request(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(`${base}${url}`, {
      method,
      ca: readFileSync(`${work}/tls/cert.pem`),
      headers: { 'content-type': 'application/json', ...headers },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

async function api(method, url, body, session) {
  const res = await request(method, url, body, { cookie: session.cookie, 'x-csrf-token': session.csrf });
  assert.ok(res.status < 300, `${method} ${url}: ${res.status} ${res.text}`);
  return res.text ? JSON.parse(res.text) : null;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mnt]);
  // The files: the reported 3CX build (18.12.416), a clean one (18.12.422), and an ELF
  // "updater" whose hash a vendor's advisory will name.
  copyFileSync(path.join(FIXTURES, '3CXDesktopApp.exe'), path.join(mnt, '3CXDesktopApp.exe'));
  copyFileSync(path.join(FIXTURES, '3CXDesktopApp-18.12.422.exe'), path.join(mnt, '3CXDesktopApp-18.12.422.exe'));
  mkdirSync(path.join(mnt, 'bin'));
  copyFileSync('/usr/bin/true', path.join(mnt, 'bin', 'update-helper'));
  for (const f of ['3CXDesktopApp.exe', '3CXDesktopApp-18.12.422.exe', 'bin/update-helper']) chmodSync(path.join(mnt, f), 0o755);

  // Server, over HTTPS with the certificate it makes on first start.
  const db = `sqlite://${work}/server.db`;
  execFileSync(BIN, ['server', 'create-admin', '--database-url', db, '--organization', 'Acme', '--user', 'admin'], {
    input: `${PASSWORD}\n`,
  });
  port = await freePort();
  base = `https://127.0.0.1:${port}`;
  server = spawn(BIN, ['server', '--database-url', db, '--listen', `127.0.0.1:${port}`, '--tls-dir', `${work}/tls`], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await until('the server listening', () => new Promise((r) => {
    const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); });
    s.on('error', () => r(false));
  }), 30000);

  // Setup a person did long ago, through the API: a group with an enrollment token, and
  // the tools under mnt/bin permitted.
  const login = await request('POST', '/api/session', { organization: 'Acme', user: 'admin', password: PASSWORD });
  assert.equal(login.status, 200, login.text);
  const session = { cookie: login.headers['set-cookie'][0].split(';')[0], csrf: JSON.parse(login.text).csrf_token };
  const group = await api('POST', '/api/groups', { path: 'Linux' }, session);
  const { token } = await api('POST', `/api/groups/${group.id}/enrollment-token`, {}, session);
  await api('POST', '/api/applications', { name: 'Sandbox tools', rules: [{ path: `${mnt}/bin/*` }] }, session);
  await api('POST', '/api/policies', { name: 'Permit sandbox tools', position: 0, applications: ['Sandbox tools'], action: 'permit' }, session);
  // A new organization starts in Monitor; these workflows judge enforcement, so the
  // organization is put in Secured, as its administrator does once the baseline is in place.
  assert.equal((await api('GET', '/api/settings', undefined, session)).mode, 'monitor');
  await api('PUT', '/api/settings', { mode: 'secured' }, session);

  // The agent, enrolled with the group's token (from a file only root reads, never on the
  // command line), watching only the tmpfs.
  const ready = path.join(work, 'ready');
  const tokenFile = path.join(work, 'enroll-token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  agent = spawn('timeout', ['-s', 'KILL', '900', BIN, 'agent', '--server', base, '--server-ca', `${work}/tls/cert.pem`,
    '--enroll-token-file', tokenFile, '--state-dir', `${work}/state`, '--spool', `${work}/spool`, '--mark-under', mnt,
    '--no-protect', '--exit-after', '840', '--ready-file', ready], { stdio: ['ignore', 'ignore', 'inherit'] });
  await until('the agent watching', () => existsSync(ready), 60000);
  assert.equal(run('bin/update-helper'), 'ran');
  assert.equal(run('3CXDesktopApp-18.12.422.exe'), 'EPERM', 'Secured: nothing permits it yet');

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
  page = await context.newPage();
  await page.goto(`${base}/`);
  await snap('login');
  await page.getByLabel('Organization').fill('Acme');
  await page.getByLabel('User').fill('admin');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/policies');
  await page.getByRole('link', { name: 'Computers', exact: true }).click();
  await page.getByText('online', { exact: true }).waitFor();
  await snap('computers-agent-online');
});

after(async () => {
  await browser?.close();
  if (agent && agent.exitCode === null) {
    agent.kill('SIGTERM');
    await until('the agent stopping', () => agent.exitCode !== null || agent.signalCode !== null, 20000).catch(() => agent.kill('SIGKILL'));
  }
  server?.kill('SIGKILL');
  spawnSync('umount', ['-l', mnt]);
});

test('b: a permit for 3CX, and the built-in [Reported] deny placed above it', async () => {
  // Both builds are allowed by the agent today (a Windows program then fails with ENOEXEC).
  await page.getByRole('link', { name: 'Applications', exact: true }).click();
  await page.getByLabel('Name', { exact: true }).fill('3CX Desktop App');
  await page.getByLabel('OriginalFilename').fill('3CXDesktopApp');
  await page.getByLabel('Company').fill('3CX Ltd');
  await page.getByLabel('OS').selectOption('windows');
  await page.getByRole('button', { name: 'Add application' }).click();
  await page.getByText('Application "3CX Desktop App" added').waitFor();
  await snap('applications');

  await page.getByRole('link', { name: 'Policies', exact: true }).click();
  await page.getByLabel('Name').fill('Permit 3CX Desktop App');
  await page.getByLabel('Application').selectOption('3CX Desktop App');
  await page.getByLabel('Action').selectOption('permit');
  await page.getByLabel('Place').selectOption('top');
  await page.getByRole('button', { name: 'Add policy' }).click();
  await page.getByText('Policy "Permit 3CX Desktop App" added').waitFor();
  await snap('policies-permit-on-top');
  await until('the permit enforced', () => run('3CXDesktopApp.exe') === 'ENOEXEC');
  assert.equal(run('3CXDesktopApp-18.12.422.exe'), 'ENOEXEC');

  // The built-in deny goes above the permit: the reported build is denied, the clean one runs.
  await page.getByRole('button', { name: 'Move Deny reported compromised builds (Built-In) up' }).click();
  await page.getByText('moved up').waitFor();
  const first = await page.locator('tbody tr').first().getAttribute('data-policy');
  assert.equal(first, 'Deny reported compromised builds (Built-In)');
  await snap('policies-builtin-deny-above');
  await until('the reported build denied', () => run('3CXDesktopApp.exe') === 'EPERM');
  assert.equal(run('3CXDesktopApp-18.12.422.exe'), 'ENOEXEC', 'the clean build is still allowed');
});

test("a: Airlock's blocklist package — paste, extract, bulk add, metadata rule, approve at the root", async () => {
  const helper = sha256(path.join(mnt, 'bin', 'update-helper'));
  assert.equal(run('bin/update-helper'), 'ran');
  await page.getByRole('link', { name: 'Blocklists', exact: true }).click();
  await page.getByLabel('Name').fill('3CX DesktopApp');
  await page.getByLabel('Description').fill('Compromised 3CX builds, March 2023');
  await page.getByRole('button', { name: 'Create package' }).click();
  await page.getByText('now paste its hashes').waitFor();

  // A vendor's advisory table, pasted as is: hashes in a markdown table, one repeated.
  const csv = readFileSync(path.join(ROOT, 'crates/catalog/data/3cx-iocs.csv'), 'utf8').split('\n').slice(1, 6).join('\n');
  const advisory = `| File | SHA256 |\n|---|---|\n| update-helper | ${helper} |\n| update-helper (again) | ${helper.toUpperCase()} |\n\n${csv}\n`;
  await page.getByLabel('Text with hashes').fill(advisory);
  await page.getByRole('button', { name: 'Extract hashes' }).click();
  const add = page.getByRole('button', { name: /^Add \d+ hashes to the package$/ });
  await add.waitFor();
  await page.getByText('duplicates dropped').waitFor();
  await snap('blocklist-extract-preview');
  await add.click();
  await page.getByText(/Added \d+ hashes/).waitFor();

  await page.getByLabel('OS').selectOption('windows');
  await page.getByLabel('OriginalFilename').fill('3CXDesktopApp');
  await page.getByRole('button', { name: 'Add metadata rule' }).click();
  await page.getByText('Metadata rule added').waitFor();
  // Not approved yet: nothing is denied by it.
  assert.equal(run('bin/update-helper'), 'ran');

  await page.getByLabel('Scope').selectOption('organization');
  await page.getByLabel('Status').selectOption('enforce');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.getByText('Approved at organization').waitFor();
  await snap('blocklist-approved');
  await until('the blocked file denied', () => run('bin/update-helper') === 'EPERM');
  // The metadata rule denies every 3CXDesktopApp build, above every policy.
  await until('the metadata rule enforced', () => run('3CXDesktopApp-18.12.422.exe') === 'EPERM');

  // The denies reach the console.
  await page.getByRole('link', { name: 'Events', exact: true }).click();
  await until('the deny events delivered', async () => {
    await page.goto(`${base}/events?verdict=deny&file=update-helper`);
    return (await page.locator('tbody tr').count()) > 0;
  }, 15000);
  await snap('events-denied');
  await page.getByRole('link', { name: 'Details', exact: true }).first().click();
  await page.getByText('What would happen now').waitFor();
  await snap('event-details');
  await page.getByRole('link', { name: 'Blocklists', exact: true }).click();
  await snap('blocklists');
});

test('c: hygiene — a policy that never matched is listed as unused, removed, and the audit log says who', async () => {
  await page.getByRole('link', { name: 'Policies', exact: true }).click();
  await page.getByLabel('Name').fill('Permit retired tool');
  await page.getByLabel('Application').selectOption('Sandbox tools');
  await page.getByRole('button', { name: 'Add policy' }).click();
  await page.getByText('Policy "Permit retired tool" added').waitFor();

  await page.getByRole('link', { name: 'Unused policies', exact: true }).click();
  const today = new Date().toISOString().slice(0, 10);
  await page.getByLabel('Not matched since').fill(today);
  await page.getByLabel('Created at least this many days ago').fill('0');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.getByRole('checkbox', { name: 'Select Permit retired tool' }).waitFor();
  // Policies that matched today are not listed; built-ins never are.
  assert.equal(await page.getByRole('checkbox', { name: 'Select Permit sandbox tools' }).count(), 0);
  assert.equal(await page.getByText('Deny reported compromised builds (Built-In)').count(), 0);
  await snap('unused-policies');
  await page.getByRole('checkbox', { name: 'Select Permit retired tool' }).check();
  await page.getByRole('button', { name: 'Remove selected policies' }).click();
  await page.getByText('Removed 1: Permit retired tool').waitFor();

  await page.getByRole('link', { name: 'Audit log', exact: true }).click();
  const row = page.locator('tbody tr', { hasText: 'policy Permit retired tool' }).filter({ hasText: 'delete' });
  await row.first().waitFor();
  assert.match(await row.first().innerText(), /user admin/);
  await snap('audit-log');

  // The remaining page: what would happen to the reported build now.
  await page.getByRole('link', { name: 'What would happen', exact: true }).click();
  await page.getByLabel('Path').fill('C:\\Program Files\\3CXDesktopApp\\3CXDesktopApp.exe');
  await page.getByLabel('OS').selectOption('windows');
  await page.getByLabel('OriginalFilename').fill('3CXDesktopApp.exe');
  await page.getByRole('button', { name: 'Decide' }).click();
  await page.getByRole('status').filter({ hasText: 'denied by blocklist package "3CX DesktopApp"' }).waitFor();
  await snap('what-would-happen');
});

test('d: accounts — an auditor added, a read-only API token made once, and the signing key rotated under the running agent', async () => {
  await page.getByRole('link', { name: 'Accounts', exact: true }).click();
  const addUser = page.locator('form[action="/accounts/users"]');
  await addUser.getByLabel('User name').fill('carol');
  await addUser.locator('select[name=role]').selectOption('auditor');
  await addUser.locator('input[name=password]').fill('carol password');
  await addUser.getByRole('button', { name: 'Add user' }).click();
  await page.getByText('User "carol" added').waitFor();
  assert.equal(await page.getByRole('combobox', { name: 'Role of carol' }).inputValue(), 'auditor');

  const newToken = page.locator('form[action="/accounts/tokens"]');
  await newToken.locator('input[name=name]').fill('nightly export');
  await newToken.getByLabel('Read only').check();
  await newToken.getByRole('button', { name: 'New API token' }).click();
  const shown = (await page.locator('code.secret').first().innerText()).trim();
  assert.match(shown, /^pct_[0-9a-f]+$/);
  await snap('accounts-token-shown-once');
  const bearer = { authorization: `Bearer ${shown}` };
  assert.equal((await request('GET', '/api/policies', undefined, bearer)).status, 200);
  assert.equal((await request('POST', '/api/groups', { path: 'X' }, bearer)).status, 403, 'a read-only token cannot change');
  await page.getByRole('link', { name: 'Accounts', exact: true }).click();
  assert.equal(await page.getByText(shown).count(), 0, 'the token is never shown again');

  // The signing key: rotated from the Computers page; the running agent takes the new key
  // with its next bundle and goes on enforcing.
  const stateFile = path.join(work, 'state', 'enrollment.json');
  const before = JSON.parse(readFileSync(stateFile, 'utf8')).bundle_key;
  await page.getByRole('link', { name: 'Computers', exact: true }).click();
  await page.getByRole('button', { name: 'Rotate the signing key' }).click();
  await page.getByText('Bundle signing key rotated').waitFor();
  await snap('computers-signing-key-rotated');
  const now = JSON.parse((await request('GET', '/api/bundle-key', undefined, bearer)).text).public_key;
  assert.notEqual(now, before);
  await until('the agent holding the new key', () => JSON.parse(readFileSync(stateFile, 'utf8')).bundle_key === now);
  assert.equal(run('bin/update-helper'), 'EPERM', 'still enforcing under the new key');
});
