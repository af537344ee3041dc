// An independent OpenID Connect provider for Gatehouse's sign-in tests: panva's certified
// `oidc-provider`, configured the way an administrator would set up a generic OIDC IdP.
//
// It listens on 127.0.0.1 on a port the system picks and prints one JSON line on stdout:
//   {"issuer": "http://127.0.0.1:<port>", "port": <port>}
// It exits when its standard input closes, so it never outlives the test that started it.
//
// Settings (environment):
//   OP_CLIENT_ID, OP_CLIENT_SECRET, OP_REDIRECT_URI  the one registered client (required)
//   OP_REQUIRE_PKCE                                  "false" to allow requests without PKCE
//
// Users (password "correct horse battery staple" for all):
//   alice    sub "op-user-alice",   alice@example.org,   department "Research", groups ["engineering", "staff"]
//   mallory  sub "op-user-mallory", mallory@example.org, department "Sales",    groups ["staff"]
//
// Sign-in is plain HTML forms a cookie-keeping HTTP client can complete: GET
// /interaction/<uid> shows a login form (id "login", fields "login" and "password") posting to
// /interaction/<uid>/login; /interaction/<uid>/abort ends the sign-in with access_denied.
// Consent is granted automatically (the client is first-party).

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const PASSWORD = 'correct horse battery staple';
const USERS = {
  alice: {
    sub: 'op-user-alice', email: 'alice@example.org', name: 'Alice Example', department: 'Research',
    groups: ['engineering', 'staff'],
  },
  mallory: {
    sub: 'op-user-mallory', email: 'mallory@example.org', name: 'Mallory Example', department: 'Sales',
    groups: ['staff'],
  },
};
const BY_SUB = Object.fromEntries(Object.values(USERS).map((u) => [u.sub, u]));

function required(name) {
  const v = process.env[name];
  if (!v) {
    process.stderr.write(`oidc-provider test server: ${name} must be set\n`);
    process.exit(2);
  }
  return v;
}

const clientId = required('OP_CLIENT_ID');
const clientSecret = required('OP_CLIENT_SECRET');
const redirectUri = required('OP_REDIRECT_URI');
const requirePkce = process.env.OP_REQUIRE_PKCE !== 'false';

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, message) {
  return `<!doctype html><meta charset=utf-8><title>Sign in</title><h1>Sign in</h1>
${message ? `<p id="error">${escape(message)}</p>` : ''}
<form id="login" method="post" action="/interaction/${escape(uid)}/login">
<input name="login" autocomplete="username"><input name="password" type="password">
<button type="submit">Sign in</button></form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Cancel</button></form>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.end(html);
}

// The server listens first so the issuer can carry the port it was given.
let provider;
const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`oidc-provider test server: ${err.stack || err}\n`);
    if (!res.headersSent) send(res, 500, 'internal error');
  });
});

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
  if (!m) return provider.callback()(req, res);
  const [, uid, action] = m;
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch');
  const { prompt, params, session, grantId } = details;

  if (!action && prompt.name === 'consent') {
    // First-party client: grant what is asked for without a page.
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const saved = await grant.save();
    return provider.interactionFinished(req, res, { consent: grantId ? {} : { grantId: saved } }, {
      mergeWithLastSubmission: true,
    });
  }
  if (!action) return send(res, 200, loginPage(uid));
  if (req.method !== 'POST') return send(res, 405, 'use POST');
  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  const form = await readForm(req);
  const user = USERS[form.get('login') || ''];
  if (!user || form.get('password') !== PASSWORD) {
    return send(res, 401, loginPage(uid, 'Wrong user name or password.'));
  }
  return provider.interactionFinished(req, res, { login: { accountId: user.sub } }, {
    mergeWithLastSubmission: false,
  });
}

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
  provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => requirePkce },
    // Scope-requested claims go into the ID token (the relying party reads only the ID token).
    conformIdTokenClaims: false,
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'department'],
      groups: ['groups'],
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const user = BY_SUB[sub];
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub, email: user.email, email_verified: true, name: user.name, department: user.department,
            groups: user.groups,
          };
        },
      };
    },
  });
  provider.on('server_error', (_ctx, err) => process.stderr.write(`oidc-provider server_error: ${err.stack || err}\n`));
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

process.stdout.on('error', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
