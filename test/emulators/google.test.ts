import t from 'tap';
import * as client from 'openid-client';
import { decodeProtectedHeader } from 'jose';
import { startGoogleEmulator, type EmulatedAccount } from '../../emulators/google.js';

const clientId = 'test-client.apps.googleusercontent.com';
const clientSecret = 'test-secret';
const redirectUri = 'http://127.0.0.1:3999/auth/google/callback';

const emulator = await startGoogleEmulator({ clientId, clientSecret, redirectUris: [redirectUri] });
t.teardown(() => emulator.stop());

const discover = (auth?: client.ClientAuth) =>
  client.discovery(new URL(emulator.issuer), clientId, clientSecret, auth, {
    execute: [client.allowInsecureRequests],
  });

async function start(config: client.Configuration, extra: Record<string, string> = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}

const alice: EmulatedAccount = {
  sub: '109876543210987654321',
  email: 'alice@example.com',
  email_verified: true,
  name: 'Alice Example',
  picture: 'https://example.com/alice.png',
};

t.test('issuer and discovery look like Google', async (t) => {
  t.match(emulator.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  const res = await fetch(`${emulator.issuer}/.well-known/openid-configuration`);
  const meta = (await res.json()) as Record<string, unknown>;
  t.equal(meta.issuer, emulator.issuer);
  t.notOk('authorization_response_iss_parameter_supported' in meta, 'no RFC 9207 iss parameter, like Google');
  t.same(meta.code_challenge_methods_supported, ['S256']);
  t.same(meta.id_token_signing_alg_values_supported, ['RS256']);
  t.same([...(meta.scopes_supported as string[])].sort(), ['email', 'openid', 'profile']);
  t.same([...(meta.token_endpoint_auth_methods_supported as string[])].sort(), [
    'client_secret_basic',
    'client_secret_post',
  ]);
  t.ok(meta.userinfo_endpoint);
});

t.test('authorization code flow with openid-client: PKCE, state, nonce, claims', async (t) => {
  const started = performance.now();
  const config = await discover();
  const { url, verifier, state, nonce } = await start(config);
  const callback = await emulator.authorize(url, alice);

  t.equal(`${callback.origin}${callback.pathname}`, redirectUri);
  t.equal(callback.searchParams.get('state'), state);
  t.ok(callback.searchParams.get('code'));
  t.notOk(callback.searchParams.has('iss'), 'no iss in the callback');

  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims()!;
  t.equal(claims.sub, alice.sub);
  t.equal(typeof claims.sub, 'string');
  t.equal(claims.email, alice.email);
  t.equal(claims.email_verified, true);
  t.equal(claims.name, alice.name);
  t.equal(claims.picture, alice.picture);
  t.equal(claims.nonce, nonce);
  t.equal(claims.aud, clientId);
  t.equal(claims.iss, emulator.issuer);
  t.equal(decodeProtectedHeader(tokens.id_token!).alg, 'RS256');
  t.equal(tokens.token_type.toLowerCase(), 'bearer');
  t.ok(tokens.access_token);

  const userinfo = await client.fetchUserInfo(config, tokens.access_token, alice.sub);
  t.equal(userinfo.email, alice.email);
  t.comment(`full flow took ${Math.round(performance.now() - started)} ms`);

  await t.rejects(
    client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedNonce: nonce,
      expectedState: state,
    }),
    { name: 'ResponseBodyError', error: 'invalid_grant' },
    'a reused code is refused',
  );
});

t.test('a wrong code_verifier is refused', async (t) => {
  const config = await discover();
  const { url, state, nonce } = await start(config);
  const callback = await emulator.authorize(url, alice);
  await t.rejects(
    client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: client.randomPKCECodeVerifier(),
      expectedNonce: nonce,
      expectedState: state,
    }),
    { name: 'ResponseBodyError', error: 'invalid_grant' },
  );
});

t.test('client_secret_basic works too; a wrong secret does not', async (t) => {
  const config = await discover(client.ClientSecretBasic(clientSecret));
  const { url, verifier, state, nonce } = await start(config);
  const tokens = await client.authorizationCodeGrant(config, await emulator.authorize(url, alice), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  t.equal(tokens.claims()?.sub, alice.sub);

  const wrong = await client.discovery(new URL(emulator.issuer), clientId, 'not-the-secret', undefined, {
    execute: [client.allowInsecureRequests],
  });
  const second = await start(wrong);
  await t.rejects(
    client.authorizationCodeGrant(wrong, await emulator.authorize(second.url, alice), {
      pkceCodeVerifier: second.verifier,
      expectedNonce: second.nonce,
      expectedState: second.state,
    }),
    { name: 'ResponseBodyError', error: 'invalid_client' },
  );
});

t.test('PKCE is required, and only S256', async (t) => {
  const config = await discover();
  const plainless = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    state: 'st',
  });
  const noPkce = await emulator.authorize(plainless, alice);
  t.equal(noPkce.searchParams.get('error'), 'invalid_request');
  t.equal(noPkce.searchParams.get('state'), 'st');

  const plain = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    state: 'st',
    code_challenge: client.randomPKCECodeVerifier(),
    code_challenge_method: 'plain',
  });
  t.equal((await emulator.authorize(plain, alice)).searchParams.get('error'), 'invalid_request');
});

t.test('an account without email gets no email claims', async (t) => {
  const config = await discover();
  const { url, verifier, state, nonce } = await start(config);
  const tokens = await client.authorizationCodeGrant(config, await emulator.authorize(url, { sub: '42' }), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  const claims = tokens.claims()!;
  t.equal(claims.sub, '42');
  t.notOk('email' in claims);
  t.notOk('email_verified' in claims);
});

t.test('the user can cancel: access_denied', async (t) => {
  const config = await discover();
  const { url, state, verifier } = await start(config);
  const callback = await emulator.deny(url);
  t.equal(callback.searchParams.get('error'), 'access_denied');
  await t.rejects(
    client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }),
    { name: 'AuthorizationResponseError', error: 'access_denied' },
  );
});

t.test('a browser sees the emulated sign-in form', async (t) => {
  const config = await discover();
  const { url } = await start(config);
  const first = await fetch(url, { redirect: 'manual' });
  t.equal(first.status, 303);
  const cookies = first.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const page = await fetch(new URL(first.headers.get('location')!, url), { headers: { cookie: cookies } });
  t.equal(page.status, 200);
  const html = await page.text();
  t.match(html, 'Emulated Google sign-in');
  for (const field of ['sub', 'email', 'name']) t.match(html, `name="${field}"`);
  t.match(html, '<button type="submit"');
});

t.test('an unregistered redirect_uri is refused without redirecting', async (t) => {
  const config = await discover();
  const { url } = await start(config, { redirect_uri: 'http://127.0.0.1:3999/elsewhere' });
  await t.rejects(emulator.authorize(url, alice), /redirect_uri/);
});

t.test('issParameter: true keeps oidc-provider RFC 9207 iss (not Google-like)', async (t) => {
  const withIss = await startGoogleEmulator({ clientId, clientSecret, redirectUris: [redirectUri], issParameter: true });
  t.teardown(() => withIss.stop());
  const config = await client.discovery(new URL(withIss.issuer), clientId, clientSecret, undefined, {
    execute: [client.allowInsecureRequests],
  });
  t.equal(config.serverMetadata().authorization_response_iss_parameter_supported, true);
  const { url, verifier, state, nonce } = await start(config);
  const callback = await withIss.authorize(url, alice);
  t.equal(callback.searchParams.get('iss'), withIss.issuer);
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  t.equal(tokens.claims()?.sub, alice.sub);
});
