// Gatehouse in a real headless Chromium: the dashboard and the demo's sign-in.
//
// Run by crates/gatehouse/tests/dashboard_browser.rs against a running `gatehouse demo`; the
// test passes what it printed in the environment:
//   GH_ADMIN      admin listener base URL (http://127.0.0.1:PORT)
//   GH_TOKEN      an admin API token
//   GH_TEAM       the team domain (http://auth.localhost:PORT)
//   GH_WIKI       the Engineering wiki (http://wiki.localhost:PORT/)
//   GH_SALES      the Sales dashboard (http://sales.localhost:PORT/)
//   GH_SCREENSHOTS  optional: a directory to save dashboard screenshots into
//
// Each flow is reported as `ok - name` or `not ok - name`; the last line is
// `N passed, N failed`, and the exit code is 1 when anything failed.

import { chromium } from "playwright-core";
import { join } from "node:path";
import assert from "node:assert/strict";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const ADMIN = env("GH_ADMIN");
const TOKEN = env("GH_TOKEN");
const TEAM = env("GH_TEAM");
const WIKI = env("GH_WIKI");
const SALES = env("GH_SALES");
const SHOTS = process.env.GH_SCREENSHOTS || "";
const PASSWORD = "Passw0rd!";
const ENGINEERING_ID = "0a1b2c3d-0001-4e5f-8a9b-000000000001";
const TIMEOUT = 30_000;

// Playwright starts Chromium with a fresh temporary profile (--user-data-dir) of its own, and
// every context below is isolated from the others.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});

const results = [];
async function flow(name, fn) {
  try {
    await fn();
    results.push([name, null]);
    console.log(`ok - ${name}`);
  } catch (e) {
    results.push([name, e]);
    console.log(`not ok - ${name}\n  ${String(e && e.stack || e).split("\n").join("\n  ")}`);
  }
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  // Destructive forms ask for confirmation.
  page.on("dialog", (d) => d.accept());
  return { context, page };
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signInToDashboard(page) {
  await page.goto(`${ADMIN}/apps`);
  await page.waitForURL(/\/login\?next=/);
  await page.fill("#token", TOKEN);
  await Promise.all([page.waitForURL(`${ADMIN}/apps`), page.click("#login-form button[type=submit]")]);
}

/// On the team domain's identity provider chooser (there is more than one IdP once a flow
/// has added one), picks the emulated tenant.
async function chooseContoso(page) {
  const chooser = page.locator("a:has-text('Contoso Entra ID (emulated)')");
  if (await chooser.count()) await chooser.click();
}

/// Signs in through the emulator's page, starting from an application URL.
async function signInAs(page, user, appUrl) {
  await page.goto(appUrl);
  await chooseContoso(page);
  await page.waitForSelector("#signin #username");
  await page.fill("#username", user);
  await page.fill("#password", PASSWORD);
  // The callback may take a while (groups read from Graph, throttled): the caller waits for
  // where the sign-in lands.
  await page.click("#signin button[type=submit]", { noWaitAfter: true });
}

let dash;
let alice;

try {
  await flow("dashboard: sign in with an API token; a wrong token is refused", async () => {
    const { page } = await newPage();
    await page.goto(`${ADMIN}/login`);
    await page.fill("#token", "gth_wrong-token");
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("text=That token is not valid");
    assert.equal(await page.inputValue("#token"), "", "a refused token is not shown again");
    await signInToDashboard(page);
    await page.waitForSelector("h1:has-text('Applications')");
    const cookies = await page.context().cookies(ADMIN);
    const session = cookies.find((c) => c.name === "gatehouse_dashboard");
    assert.ok(session, "session cookie set");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    dash = page;
  });

  await flow("dashboard: the printed sign-in link (token in the fragment) signs in and leaves no token in the address", async () => {
    const { page, context } = await newPage();
    await Promise.all([page.waitForURL(`${ADMIN}/`), page.goto(`${ADMIN}/login#token=${encodeURIComponent(TOKEN)}`)]);
    await page.waitForSelector("h1:has-text('Overview')");
    assert.ok(!page.url().includes(TOKEN));
    await shot(page, "overview");
    await context.close();
  });

  await flow("dashboard: add Entra ID — setup steps and redirect URI beside the form, validation keeps the input, SCIM secret shown once", async () => {
    const page = dash;
    await page.goto(`${ADMIN}/idps/new?type=azureAD`);
    assert.equal((await page.textContent("#redirect-url")).trim(), `${TEAM}/cdn-cgi/access/callback`);
    await page.waitForSelector("text=Register an application to integrate with Microsoft Entra ID");
    await page.waitForSelector("text=Grant admin consent");
    await page.fill("#name", "Fabrikam Entra ID");
    await page.fill("#client_id", "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f");
    // The classic mistake: the secret's ID instead of its value.
    await page.fill("#client_secret", "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f");
    await page.fill("#directory_id", "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f");
    await page.check("#scim_enabled");
    await page.click("form.form button[type=submit]");
    await page.waitForSelector(".field-error:has-text(\"looks like the secret's ID\")");
    assert.equal(await page.inputValue("#name"), "Fabrikam Entra ID", "input kept");
    assert.equal(await page.inputValue("#client_id"), "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f");
    await shot(page, "idp-validation");
    await page.fill("#client_secret", "Xy8Q~a-real-looking-secret-value");
    await page.click("form.form button[type=submit]");
    const secret = (await page.textContent("#scim-secret")).trim();
    assert.match(secret, /^ghscim_/);
    const scimUrl = (await page.textContent("#scim-url")).trim();
    assert.match(scimUrl, new RegExp(`^${TEAM}/populations/[0-9a-f-]{36}/scim/v2$`));
    const test = await page.getAttribute("#test-idp", "href");
    assert.match(test, new RegExp(`^${TEAM}/cdn-cgi/access/test-idp/[0-9a-f-]{36}$`));
    const id = test.split("/").pop();
    await page.goto(`${ADMIN}/idps/${id}`);
    assert.ok(!(await page.content()).includes(secret), "the SCIM secret is shown only once");
    await page.goto(`${ADMIN}/idps`);
    await page.waitForSelector("td a:has-text('Fabrikam Entra ID')");
    await shot(page, "identity-providers");
  });

  await flow("dashboard: the IdP's Test link opens the public test-idp flow on the emulator; provisioned users and groups are listed", async () => {
    const page = dash;
    await page.goto(`${ADMIN}/idps`);
    await page.click("td a:has-text('Contoso')");
    await shot(page, "identity-provider");
    const [popup] = await Promise.all([page.context().waitForEvent("page"), page.click("#test-idp")]);
    await popup.waitForSelector("#signin #username");
    await popup.close();
    // What the demo's provisioning cycle delivered.
    await page.waitForSelector("#scim-counts:has-text('4 users')");
    await page.click("#scim-counts a:has-text('groups')");
    await page.waitForSelector("#scim-groups td:has-text('Engineering')");
    await page.waitForSelector(`#scim-groups td code:has-text('${ENGINEERING_ID}')`);
  });

  let viaScim = false;
  await flow("dashboard: build a policy with a SCIM group from the dropdown (Entra group object id when none is provisioned)", async () => {
    const page = dash;
    await page.goto(`${ADMIN}/apps`);
    await page.click("td a:has-text('Engineering wiki')");
    const row = page.locator("#rules .rule-row").last();
    const scimOptions = await row.locator("select[name='rule.scim_group'] option").allTextContents();
    const engineering = scimOptions.find((o) => o.trim().startsWith("Engineering"));
    viaScim = Boolean(engineering);
    await page.fill("#policy-name", "Engineering (dashboard)");
    if (viaScim) {
      await row.locator("select[name='rule.type']").selectOption("scim_group");
      assert.ok(await row.locator("select[name='rule.scim_group']").isVisible(), "the SCIM group dropdown is shown");
      assert.ok(!(await row.locator("input[name='rule.value']").isVisible()), "the text value is hidden");
      await row.locator("select[name='rule.scim_group']").selectOption({ label: engineering.trim() });
    } else {
      console.log("  # no SCIM group provisioned: using the Entra group object id");
      await row.locator("select[name='rule.type']").selectOption("azureAD");
      await row.locator("input[name='rule.value']").fill(ENGINEERING_ID);
    }
    // A second rule, invalid: the API's rule parser refuses it beside its row, keeping the rest.
    await page.click("#add-rule");
    const bad = page.locator("#rules .rule-row").last();
    await bad.locator("select[name='rule.type']").selectOption("ip");
    await bad.locator("input[name='rule.value']").fill("300.1.1.1");
    await page.click("#policy-form button[type=submit]");
    await page.waitForSelector(".rule-row.invalid .field-error:has-text('must be an IPv4 or IPv6 address')");
    assert.equal(await page.inputValue("#policy-name"), "Engineering (dashboard)");
    await shot(page, "policy-builder-error");
    await page.locator(".rule-row.invalid .remove-rule").click();
    await page.click("#policy-form button[type=submit]");
    await page.waitForSelector("text=Policy added.");
    const summary = viaScim ? "SCIM group Engineering" : `Entra group ${ENGINEERING_ID}`;
    await page.waitForSelector(`.rules-summary .pill:has-text('${summary}')`);
    await shot(page, "application");
  });

  await flow("demo: alice signs in to the wiki through the emulator's sign-in page and sees the origin's identity page", async () => {
    const { page } = await newPage();
    await signInAs(page, "alice@contoso.onmicrosoft.com", WIKI);
    await page.waitForURL(WIKI);
    await page.waitForSelector("#who:has-text('alice@contoso.com')");
    const claims = await page.textContent("#jwt-claims");
    assert.match(claims, /"email": "alice@contoso.com"/);
    assert.match(claims, /"aud"/);
    const headers = await page.textContent("#headers");
    assert.match(headers, /cf-access-authenticated-user-email/);
    await shot(page, "origin-identity");
    alice = page;
  });

  await flow("demo: alice is refused on the Sales dashboard", async () => {
    const page = alice;
    const statuses = [];
    const seen = (r) => statuses.push(r.status());
    page.on("response", seen);
    await page.goto(SALES);
    // Signed in at the team domain already: refused at once, or after the IdP is asked again
    // (the emulator then offers to continue as alice) — either way never let through.
    await chooseContoso(page);
    const again = page.locator("#continue button[type=submit]");
    if (await again.count()) await again.click();
    await page.waitForSelector("text=open to the Sales group only");
    page.off("response", seen);
    assert.ok(statuses.includes(403), `a 403 answer (saw ${statuses})`);
    assert.notEqual(new URL(page.url()).hostname, "sales.localhost", "the origin was not reached");
    await shot(page, "denied");
  });

  await flow("demo: bob (no mailbox) gets into the Sales dashboard, and not into the wiki", async () => {
    const { page, context } = await newPage();
    await signInAs(page, "bob@contoso.onmicrosoft.com", SALES);
    await page.waitForURL(SALES);
    await page.waitForSelector("#who:has-text('bob@contoso.onmicrosoft.com')");
    await page.goto(WIKI);
    await chooseContoso(page);
    const again = page.locator("#continue button[type=submit]");
    if (await again.count()) await again.click();
    await page.waitForSelector("text=open to the Engineering group");
    await context.close();
  });

  await flow("demo: dave, in 252 groups (token overage, groups read from Graph), gets into the wiki", async () => {
    const { page, context } = await newPage();
    const started = Date.now();
    await signInAs(page, "dave@contoso.onmicrosoft.com", WIKI);
    await page.waitForURL(WIKI, { timeout: 60_000 });
    console.log(`  # dave's sign-in took ${Date.now() - started} ms`);
    await page.waitForSelector("#who:has-text('dave@')");
    await context.close();
  });

  await flow("dashboard: revoke alice, and her next proxied request is refused", async () => {
    await alice.goto(WIKI);
    await alice.waitForSelector("#who:has-text('alice@contoso.com')");
    const page = dash;
    await page.goto(`${ADMIN}/users?search=alice`);
    await page.click("td a:has-text('alice')");
    await page.waitForSelector("#sessions");
    await shot(page, "user");
    await page.click("#revoke");
    await page.waitForSelector("text=Every session of the user was revoked");
    await page.waitForSelector("#no-sessions");
    // The data plane hears of the revocation through the store's change notification; the
    // revoked session is sent to sign in again instead of reaching the origin.
    const deadline = Date.now() + TIMEOUT;
    let reached = true;
    while (reached && Date.now() < deadline) {
      const resp = await alice.goto(WIKI);
      reached = new URL(alice.url()).hostname === "wiki.localhost" && (await alice.locator("#who").count()) > 0;
      if (!reached) {
        const first = resp.request().redirectedFrom();
        const redirect = first && (await first.response());
        assert.ok(redirect && redirect.status() === 302, "refused with a redirect to sign in");
        assert.match(redirect.headers()["location"], /\/cdn-cgi\/access\/login\//);
      }
    }
    assert.equal(reached, false, "the revoked session must not reach the origin");
  });

  await flow("dashboard: the access log filters by user and outcome; nested-group drift is warned about; SCIM log and keys pages render", async () => {
    const page = dash;
    await page.goto(`${ADMIN}/logs?email=alice%40contoso.com&allowed=allowed`);
    await page.waitForSelector("table.log td:has-text('Engineering wiki')");
    assert.equal(await page.locator("table.log td:has-text('Sales dashboard')").count(), 0, "filtered to allowed requests");
    await shot(page, "access-log");
    // alice reached Engineering only through Platform when she signed in: drift.
    await page.goto(`${ADMIN}/users`);
    await page.waitForSelector("#drift-warning");
    await page.goto(`${ADMIN}/idps`);
    await page.click("td a:has-text('Contoso')");
    await page.waitForSelector("#drift td:has-text('alice@contoso.onmicrosoft.com')");
    await page.goto(`${ADMIN}/logs/scim`);
    await page.waitForSelector("#scim-log td:has-text('alice@contoso.onmicrosoft.com')");
    await shot(page, "scim-log");
    await page.goto(`${ADMIN}/keys`);
    await shot(page, "keys");
  });
} finally {
  await browser.close();
}

const failed = results.filter(([, e]) => e).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
