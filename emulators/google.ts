// A Google-like OpenID Provider on loopback, built on oidc-provider (a real,
// certified protocol server). Tests drive it with `authorize()`; a human in a
// browser gets a tiny "Emulated Google sign-in" form instead of Google's pages.
//
// Google-like behaviour: RS256 ID tokens carrying sub (a string), email,
// email_verified, name, picture and the echoed nonce; scopes `openid email
// profile`; PKCE S256 required (`plain` is rejected); client_secret_post and
// client_secret_basic; single-use authorization codes (reuse -> invalid_grant);
// no `authorization_response_iss_parameter_supported` in discovery and no
// `iss` in the authorization response (oidc-provider always adds both, so they
// are stripped on the way out; pass `issParameter: true` to keep them).
// For tests of hostile tokens: `signIdToken()` signs any claims with the emulator's key
// (what a native SDK would hand an app), and `tamperNextIdToken()` rewrites the claims of
// the next ID token the token endpoint issues (the code flow), re-signed with that key.
// Revocation (RFC 7009) at /revoke, listed in discovery as `revocation_endpoint` (Google's
// oauth2.googleapis.com/revoke): `token` with client_secret_post or client_secret_basic;
// revoking a token ends the whole grant, as at Google (this emulator issues access tokens
// only: no refresh_token grant, so no offline access).
// `revocations()` lists what was revoked; `failRevocation()` makes the next calls fail.
// Everything is kept in memory.

import { generateKeyPair, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import * as jose from 'jose';

export interface EmulatedAccount {
  sub: string;
  email?: string;
  /** Defaults to true when `email` is given (as for ordinary Google accounts). */
  email_verified?: boolean;
  name?: string;
  picture?: string;
}

export interface GoogleEmulatorOptions {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  /** 0 or absent: a free port. */
  port?: number;
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Keep oidc-provider's RFC 9207 `iss` response parameter (Google does not send it). Default false. */
  issParameter?: boolean;
}

/** A token revoked at /revoke. */
export interface GoogleRevocation {
  /** 'access_token' or 'refresh_token' (the RFC 7009 hint names). */
  tokenType: string;
  /** The account the token belonged to. */
  sub?: string;
}

export interface GoogleEmulator {
  /** `http://127.0.0.1:<port>`: also the discovery base URL. */
  issuer: string;
  stop(): Promise<void>;
  /**
   * Plays the user: follows the authorization URL, signs in as `account`,
   * consents, and returns the redirect to the client's redirect_uri (with
   * `code` and `state`, or `error`) without fetching it.
   */
  authorize(authorizationUrl: string | URL, account: EmulatedAccount): Promise<URL>;
  /** Like authorize(), but the user presses "Cancel": the redirect carries `error=access_denied`. */
  deny(authorizationUrl: string | URL): Promise<URL>;
  /** Signs arbitrary ID token claims with the emulator's key (odd `aud`, `azp`, `sub`, `iat`, `exp`). */
  signIdToken(claims: Record<string, unknown>): Promise<string>;
  /**
   * The next ID token the token endpoint issues carries `edit(claims)` instead, validly
   * signed; with `forged`, signed under the emulator's kid by a key that is not in its JWKS
   * (an answer forged on its way).
   */
  tamperNextIdToken(edit: (claims: Record<string, unknown>) => Record<string, unknown>, options?: { forged?: boolean }): void;
  /** Every revocation that ended a live token at /revoke, oldest first (unknown or dead tokens are not in it). */
  revocations(): GoogleRevocation[];
  /** The next `times` calls of /revoke answer HTTP `status` (default 503) and revoke nothing. */
  failRevocation(times: number, status?: number): void;
}

// ---------------------------------------------------------------------------
// The small part of oidc-provider's API used here (its package ships no types).

interface OidcInteraction {
  uid: string;
  prompt: { name: string; reasons?: string[]; details?: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
}

interface OidcGrant {
  addOIDCScope(scope: string): void;
  save(): Promise<string>;
}

interface OidcToken {
  kind: string;
  accountId?: string;
}

interface KoaContext {
  path: string;
  status: number;
  body: unknown;
  type: string;
  oidc?: {
    params?: Record<string, unknown>;
    prompts?: Set<string>;
    result?: Record<string, unknown>;
    route?: string;
    entities?: Record<string, OidcToken | undefined>;
  };
  response: { get(field: string): string };
  set(field: string, value: string): void;
}

interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  use(middleware: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): unknown;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<OidcInteraction>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  Grant: new (init: { accountId: string; clientId: string }) => OidcGrant;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

interface OidcProviderModule {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
  interactionPolicy: {
    base(): Array<{ name: string; checks: { add(check: unknown): void } }> & {
      get(name: string): { checks: { add(check: unknown): void } };
    };
    Check: new (
      reason: string,
      description: string,
      check: (ctx: KoaContext) => boolean | Promise<boolean>,
    ) => unknown;
  };
}

let modulePromise: Promise<OidcProviderModule> | undefined;

/** Imports oidc-provider once, dropping its "Unsupported runtime" notice for Node 20. */
async function loadOidcProvider(): Promise<OidcProviderModule> {
  modulePromise ??= (async () => {
    const original = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
      original.apply(console, args);
    };
    try {
      const specifier = 'oidc-provider';
      return (await import(specifier)) as OidcProviderModule;
    } finally {
      console.warn = original;
    }
  })();
  return await modulePromise;
}

// ---------------------------------------------------------------------------
// In-memory storage adapter (oidc-provider's own warns on every start).

interface StoredPayload {
  [key: string]: unknown;
  uid?: string;
  userCode?: string;
  grantId?: string;
  consumed?: number;
}

function memoryAdapter() {
  const store = new Map<string, { payload: StoredPayload; expiresAt: number | undefined }>();
  const byUid = new Map<string, string>();
  const byUserCode = new Map<string, string>();
  const byGrant = new Map<string, Set<string>>();

  const read = (key: string | undefined): StoredPayload | undefined => {
    if (key === undefined) return undefined;
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return { ...entry.payload };
  };

  return class MemoryAdapter {
    constructor(private readonly model: string) {}

    private key(id: string): string {
      return `${this.model}:${id}`;
    }

    async upsert(id: string, payload: StoredPayload, expiresIn?: number): Promise<void> {
      const key = this.key(id);
      store.set(key, {
        payload: { ...payload },
        expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined,
      });
      if (payload.uid) byUid.set(`${this.model}:${payload.uid}`, key);
      if (payload.userCode) byUserCode.set(`${this.model}:${payload.userCode}`, key);
      if (payload.grantId) {
        let keys = byGrant.get(payload.grantId);
        if (!keys) byGrant.set(payload.grantId, (keys = new Set()));
        keys.add(key);
      }
    }

    async find(id: string): Promise<StoredPayload | undefined> {
      return read(this.key(id));
    }

    async findByUid(uid: string): Promise<StoredPayload | undefined> {
      return read(byUid.get(`${this.model}:${uid}`));
    }

    async findByUserCode(userCode: string): Promise<StoredPayload | undefined> {
      return read(byUserCode.get(`${this.model}:${userCode}`));
    }

    async consume(id: string): Promise<void> {
      const entry = store.get(this.key(id));
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id: string): Promise<void> {
      store.delete(this.key(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      for (const key of byGrant.get(grantId) ?? []) store.delete(key);
      byGrant.delete(grantId);
    }
  };
}

// ---------------------------------------------------------------------------

const escapeHtml = (value: string): string =>
  value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function signInPage(uid: string, clientId: string, scope: string, prefill: EmulatedAccount): string {
  const v = (s: string | undefined) => escapeHtml(s ?? '');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Emulated Google sign-in</title></head>
<body style="font-family:sans-serif;max-width:28em;margin:2em auto">
<h1>Emulated Google sign-in</h1>
<p>Client <code>${v(clientId)}</code> asks for <code>${v(scope)}</code>. No real Google account is involved.</p>
<form method="post" action="/interaction/${v(uid)}">
<p><label>sub<br><input name="sub" required value="${v(prefill.sub)}"></label></p>
<p><label>email<br><input name="email" type="email" value="${v(prefill.email)}"></label>
<label><input type="checkbox" name="email_verified" value="true" checked> verified</label></p>
<p><label>name<br><input name="name" value="${v(prefill.name)}"></label></p>
<p><button type="submit" name="action" value="login">Sign in</button>
<button type="submit" name="action" value="deny" formnovalidate>Cancel</button></p>
</form></body></html>`;
}

function accountFromForm(form: URLSearchParams): EmulatedAccount {
  const text = (name: string) => {
    const value = form.get(name)?.trim();
    return value ? value : undefined;
  };
  const sub = text('sub');
  if (!sub) throw new Error('sub is required');
  const account: EmulatedAccount = { sub };
  const email = text('email');
  if (email) {
    account.email = email;
    const verified = form.get('email_verified');
    account.email_verified = verified === 'true' || verified === 'on';
  }
  const name = text('name');
  if (name) account.name = name;
  const picture = text('picture');
  if (picture) account.picture = picture;
  return account;
}

function formFromAccount(account: EmulatedAccount): URLSearchParams {
  const form = new URLSearchParams({ action: 'login', sub: account.sub });
  if (account.email !== undefined) {
    form.set('email', account.email);
    form.set('email_verified', String(account.email_verified ?? true));
  }
  if (account.name !== undefined) form.set('name', account.name);
  if (account.picture !== undefined) form.set('picture', account.picture);
  return form;
}

function withoutIss(location: string, base: string): string {
  const url = new URL(location, base);
  let changed = false;
  if (url.searchParams.has('iss')) {
    url.searchParams.delete('iss');
    changed = true;
  }
  if (url.hash.length > 1) {
    const fragment = new URLSearchParams(url.hash.slice(1));
    if (fragment.has('iss')) {
      fragment.delete('iss');
      url.hash = fragment.toString();
      changed = true;
    }
  }
  return changed ? url.href : location;
}

export async function startGoogleEmulator(options: GoogleEmulatorOptions): Promise<GoogleEmulator> {
  const { clientId, clientSecret, redirectUris } = options;
  if (!clientId || !clientSecret) throw new Error('clientId and clientSecret are required');
  if (redirectUris.length === 0) throw new Error('at least one redirect URI is required');
  const host = options.host ?? '127.0.0.1';
  const issParameter = options.issParameter ?? false;

  const { Provider, interactionPolicy } = await loadOidcProvider();
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
  const signIdToken = async (claims: Record<string, unknown>, key = privateKey): Promise<string> =>
    new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: signingKey.kid, typ: 'JWT' }).sign(key);
  const { privateKey: strangersKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const idTokenEdits: { edit: (claims: Record<string, unknown>) => Record<string, unknown>; forged: boolean }[] = [];

  // Accounts signed in through this emulator: findAccount answers from here.
  const accounts = new Map<string, EmulatedAccount>();

  // Like Google's account chooser, every authorization shows the sign-in form
  // (except prompt=none, which uses the existing session).
  const policy = interactionPolicy.base();
  policy.get('login').checks.add(
    new interactionPolicy.Check('emulator_sign_in', 'the emulator always asks who signs in', (ctx) =>
      !ctx.oidc?.result?.login && !ctx.oidc?.prompts?.has('none')),
  );

  // Listen first: the issuer must carry the real port.
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server = createServer((req, res) => {
    if (handler) handler(req, res);
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuerHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const issuer = `http://${issuerHost}:${port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    // A client registered for client_secret_post may also use Basic (and the reverse).
    clientAuthMethods: ['client_secret_post', 'client_secret_basic'],
    jwks: { keys: [signingKey] },
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    adapter: memoryAdapter(),
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'email', 'profile'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'picture'],
    },
    // Google puts the profile claims in the ID token too, not only in userinfo.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    subjectTypes: ['public'],
    pkce: { required: () => true },
    routes: {
      authorization: '/o/oauth2/v2/auth',
      token: '/token',
      userinfo: '/v1/userinfo',
      jwks: '/oauth2/v3/certs',
      revocation: '/revoke',
    },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      resourceIndicators: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      userinfo: { enabled: true },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) =>
          token.clientId === client.clientId,
      },
    },
    // Google ends the app's whole authorization when either token is revoked: the grant goes
    // too (oidc-provider would keep it for a revoked access token), so prompt=none cannot
    // bring new tokens back without the user. revocations() relies on it: it listens to
    // 'grant.revoked', which oidc-provider emits only when the grant goes.
    revokeGrantPolicy: () => true,
    interactions: {
      url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
      policy,
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ ...account }) };
    },
    ttl: {
      AccessToken: 3599,
      AuthorizationCode: 600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
    clientBasedCORS: () => false,
    renderError: async (ctx: KoaContext, out: Record<string, unknown>) => {
      ctx.type = 'html';
      ctx.body = `<!doctype html><meta charset="utf-8"><title>Emulated Google: error</title><h1>Emulated Google: error</h1><pre>${escapeHtml(JSON.stringify(out, null, 2))}</pre>`;
    },
  });

  provider.on('server_error', (_ctx: unknown, err: unknown) => {
    console.error('google emulator: server_error', err);
  });

  // A revocation that found a live token of the client destroys it and then revokes its
  // grant: 'grant.revoked' on the revocation route names exactly those (an unknown, expired
  // or foreign token never gets that far).
  const revocationLog: GoogleRevocation[] = [];
  provider.on('grant.revoked', (...args: unknown[]) => {
    const ctx = args[0] as KoaContext | undefined;
    if (ctx?.oidc?.route !== 'revocation') return;
    const token = ctx.oidc.entities?.AccessToken ?? ctx.oidc.entities?.RefreshToken;
    if (!token) return;
    const revocation: GoogleRevocation = { tokenType: token.kind === 'RefreshToken' ? 'refresh_token' : 'access_token' };
    if (token.accountId !== undefined) revocation.sub = token.accountId;
    revocationLog.push(revocation);
  });
  const revocationFailures: number[] = [];

  if (!issParameter) {
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.path === '/.well-known/openid-configuration' && ctx.body && typeof ctx.body === 'object') {
        delete (ctx.body as Record<string, unknown>).authorization_response_iss_parameter_supported;
      }
      if (ctx.status >= 300 && ctx.status < 400) {
        const location = ctx.response.get('location');
        if (location) {
          const stripped = withoutIss(location, issuer);
          if (stripped !== location) ctx.set('location', stripped);
        }
      }
    });
  }

  // The token endpoint's answer, with the next queued edit applied to its ID token.
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body as Record<string, unknown> | undefined;
    if (ctx.path !== '/token' || ctx.status !== 200 || typeof body?.id_token !== 'string') return;
    const tampering = idTokenEdits.shift();
    if (tampering) {
      const claims = tampering.edit(jose.decodeJwt(body.id_token) as Record<string, unknown>);
      body.id_token = await signIdToken(claims, tampering.forged ? strangersKey : privateKey);
    }
  });

  const providerCallback = provider.callback();

  async function interaction(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction does not match the interaction cookie');
    const requestedClient = String(details.params.client_id ?? '');
    const scope = String(details.params.scope ?? 'openid');

    if (req.method === 'GET') {
      const current = details.session?.accountId ? accounts.get(details.session.accountId) : undefined;
      const prefill = current ?? { sub: '100000000000000000001', email: 'dev@example.com', name: 'Dev User' };
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(signInPage(uid, requestedClient, scope, prefill));
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'GET, POST' }).end();
      return;
    }

    const form = await readForm(req);
    if (form.get('action') === 'deny') {
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'User denied access' },
        { mergeWithLastSubmission: false },
      );
      return;
    }

    const account = accountFromForm(form);
    accounts.set(account.sub, account);
    const grant = new provider.Grant({ accountId: account.sub, clientId: requestedClient });
    grant.addOIDCScope(scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: account.sub }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  handler = (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/revoke' && revocationFailures.length > 0) {
      const status = revocationFailures.shift()!;
      req.resume();
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ error: status >= 500 ? 'temporarily_unavailable' : 'invalid_request', error_description: `emulated failure (HTTP ${status})` }));
      return;
    }
    const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(path);
    if (!match) {
      providerCallback(req, res);
      return;
    }
    interaction(req, res, match[1]!).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`Emulated Google sign-in failed: ${message}\n`);
    });
  };

  // --- playing the user --------------------------------------------------

  const redirectTargets = new Set(
    redirectUris.map((uri) => {
      const u = new URL(uri);
      return `${u.origin}${u.pathname}`;
    }),
  );
  const issuerOrigin = new URL(issuer).origin;

  async function play(authorizationUrl: string | URL, form: URLSearchParams): Promise<URL> {
    const jar = new Map<string, string>();
    let url = new URL(authorizationUrl);
    if (url.origin !== issuerOrigin) {
      throw new Error(`authorization URL ${url.origin} is not this emulator (${issuerOrigin})`);
    }
    let body: URLSearchParams | undefined;
    let submissions = 0;
    for (let hop = 0; hop < 20; hop++) {
      if (redirectTargets.has(`${url.origin}${url.pathname}`)) return url;
      if (url.origin !== issuerOrigin) throw new Error(`unexpected redirect to ${url.href}`);

      const headers: Record<string, string> = {};
      if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await fetch(url, { method: body ? 'POST' : 'GET', headers, body, redirect: 'manual' });
      body = undefined;
      for (const cookie of res.headers.getSetCookie()) {
        const [pair = '', ...attributes] = cookie.split(';');
        const eq = pair.indexOf('=');
        if (eq < 1) continue;
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        const expired = attributes.some((a) => {
          const [k = '', v = ''] = a.split('=');
          const key = k.trim().toLowerCase();
          return (key === 'expires' && Date.parse(v) <= Date.now()) || (key === 'max-age' && Number(v) <= 0);
        });
        if (!value || expired) jar.delete(name);
        else jar.set(name, value);
      }

      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        url = new URL(location, url);
        continue;
      }
      const text = await res.text();
      if (res.status === 200 && /^\/interaction\/[A-Za-z0-9_-]+$/.test(url.pathname) && submissions < 3) {
        submissions += 1;
        body = form;
        continue;
      }
      const excerpt = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 500);
      throw new Error(`google emulator: unexpected HTTP ${res.status} at ${url.pathname}: ${excerpt}`);
    }
    throw new Error('google emulator: too many redirects');
  }

  return {
    issuer,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    authorize: (authorizationUrl, account) => play(authorizationUrl, formFromAccount(account)),
    deny: (authorizationUrl) => play(authorizationUrl, new URLSearchParams({ action: 'deny' })),
    signIdToken,
    tamperNextIdToken(edit, options) {
      idTokenEdits.push({ edit, forged: options?.forged ?? false });
    },
    revocations: () => revocationLog.map((entry) => ({ ...entry })),
    failRevocation(times, status = 503) {
      if (!Number.isInteger(status) || status < 100 || status > 599) throw new Error(`not an HTTP status: ${status}`);
      for (let i = 0; i < times; i++) revocationFailures.push(status);
    },
  };
}
