import t from 'tap';
import * as client from 'openid-client';
import { decodeProtectedHeader } from 'jose';
import { startGoogleEmulator, type EmulatedAccount } from '../../emulators/google.js';

const clientId = 'test-client.apps.googleusercontent.com';
const clientSecret = 'test-secret';
const redirectUri = 'http://127.0.0.1:3999/auth/google/callback';

const emulator = await startGoogleEmulator({ clientId, clientSecret, redirectUris: [redirectUri] });
t.teardown(() => emulator.stop());

const discover = (auth?: client.ClientAuth, secret = clientSecret) =>
  client.discovery(new URL(emulator.issuer), clientId, secret, auth, {
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

// ---------------------------------------------------------------------------
// Token revocation (/revoke, Google's oauth2.googleapis.com/revoke), driven over real HTTP
// as the gateway drives it when an account is deleted: listed in discovery, `token` with
// client_secret_post (openid-client's default) or Basic, each revocation of a live token
// recorded once with its subject, the token dead afterwards (userinfo 401), and
// failRevocation() answering a 5xx instead.

let nextSub = 118_000_000_000_000_000_001n
const account = (): EmulatedAccount => ({ sub: String(nextSub++), email: 'leaving@example.com', name: 'Leaving' })

/** A code-flow sign-in with openid-client: the access token the gateway would hold. */
async function signIn(who: EmulatedAccount, config?: client.Configuration): Promise<string> {
  config ??= await discover()
  const { url, verifier, state, nonce } = await start(config)
  const tokens = await client.authorizationCodeGrant(config, await emulator.authorize(url, who), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce })
  return tokens.access_token
}

async function userinfoStatus(accessToken: string): Promise<number> {
  const res = await fetch(`${emulator.issuer}/v1/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } })
  await res.arrayBuffer()
  return res.status
}

async function revokeRaw(form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${emulator.issuer}/revoke`, { method: 'POST', headers, body: new URLSearchParams(form) })
  const text = await res.text()
  return { status: res.status, text }
}

const since = (before: number) => emulator.revocations().slice(before)

t.test('discovery lists /revoke as revocation_endpoint, as Google’s does', async (t) => {
  const meta = (await (await fetch(`${emulator.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>
  t.equal(meta.revocation_endpoint, `${emulator.issuer}/revoke`)
})

t.test('revoking the access token with client_secret_post: recorded once with its sub; the token is dead', async (t) => {
  const who = account()
  const config = await discover()
  const accessToken = await signIn(who, config)
  t.equal(await userinfoStatus(accessToken), 200, 'the token works before')
  const before = emulator.revocations().length

  t.same(await revokeRaw({ client_id: clientId, client_secret: clientSecret, token: accessToken, token_type_hint: 'access_token' }), { status: 200, text: '' })
  t.same(since(before), [{ tokenType: 'access_token', sub: who.sub }])
  t.equal(await userinfoStatus(accessToken), 401, 'userinfo refuses the revoked token')

  // RFC 7009: a token that is no longer valid is answered 200 as well, and nothing is recorded.
  await client.tokenRevocation(config, accessToken)
  t.same(await revokeRaw({ client_id: clientId, client_secret: clientSecret, token: 'never-issued' }), { status: 200, text: '' })
  t.equal(since(before).length, 1)
})

t.test('openid-client’s tokenRevocation (client_secret_post by default) and client_secret_basic both work', async (t) => {
  const first = account()
  const firstToken = await signIn(first)
  const before = emulator.revocations().length
  await client.tokenRevocation(await discover(), firstToken, { token_type_hint: 'access_token' })
  t.equal(await userinfoStatus(firstToken), 401)

  const second = account()
  const basic = await discover(client.ClientSecretBasic(clientSecret))
  const secondToken = await signIn(second, basic)
  await client.tokenRevocation(basic, secondToken)
  t.equal(await userinfoStatus(secondToken), 401)
  t.same(since(before), [{ tokenType: 'access_token', sub: first.sub }, { tokenType: 'access_token', sub: second.sub }])
})

t.test('refused: a wrong secret, no client authentication, no token; nothing recorded, the token lives', async (t) => {
  const who = account()
  const accessToken = await signIn(who)
  const before = emulator.revocations().length

  const wrong = await revokeRaw({ client_id: clientId, client_secret: 'not-the-secret', token: accessToken })
  t.equal(wrong.status, 401)
  t.match(JSON.parse(wrong.text), { error: 'invalid_client' })
  await t.rejects(client.tokenRevocation(await discover(undefined, 'not-the-secret'), accessToken), { name: 'ResponseBodyError', error: 'invalid_client' }, 'openid-client too')

  // Google itself also takes an unauthenticated `token`; oidc-provider wants the client.
  const anonymous = await revokeRaw({ token: accessToken })
  t.equal(anonymous.status, 400)
  t.match(JSON.parse(anonymous.text), { error: 'invalid_request' })

  const noToken = await revokeRaw({ client_id: clientId, client_secret: clientSecret })
  t.equal(noToken.status, 400)
  t.match(JSON.parse(noToken.text), { error: 'invalid_request' })

  t.same(since(before), [])
  t.equal(await userinfoStatus(accessToken), 200)
})

t.test('failRevocation: the next calls answer the status and revoke nothing', async (t) => {
  const who = account()
  const config = await discover()
  const accessToken = await signIn(who, config)
  const before = emulator.revocations().length
  const form = { client_id: clientId, client_secret: clientSecret, token: accessToken }

  emulator.failRevocation(1)
  const unavailable = await revokeRaw(form)
  t.equal(unavailable.status, 503, 'the default is 503')
  t.match(JSON.parse(unavailable.text), { error: String })

  emulator.failRevocation(2, 500)
  t.equal((await revokeRaw(form)).status, 500)
  await t.rejects(client.tokenRevocation(config, accessToken), 'openid-client sees the 500 as a failure')

  t.same(since(before), [], 'no faulted call revoked anything')
  t.equal(await userinfoStatus(accessToken), 200, 'the token still works')

  t.same(await revokeRaw(form), { status: 200, text: '' }, 'the faults are used up: the revocation goes through')
  t.same(since(before), [{ tokenType: 'access_token', sub: who.sub }])
  t.equal(await userinfoStatus(accessToken), 401)
})
