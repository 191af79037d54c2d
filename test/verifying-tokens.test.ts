// Resource servers verify the gateway's access tokens with the libraries they already use,
// exactly as docs/verifying-tokens.md shows (its code is the files in
// examples/verifying-tokens/): jose, @fastify/jwt + get-jwks, fastify-jwt-jwks, jsonwebtoken
// + jwks-rsa and PyJWT. Each runs against a real gateway on loopback that signs with ES256,
// RS256 or EdDSA keys, fetching the key set over HTTP. The docs' table of which library
// takes which key type is checked both ways: where it says yes, a user's and a client's
// token pass and other tokens are refused; where it says no, the library refuses.

import { spawn, spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import * as jose from 'jose'
import t, { type Test } from 'tap'
import { ClientDirectory } from '../src/clients/client-directory.js'
import * as joseRecipe from '../examples/verifying-tokens/jose.js'
import * as fastifyJwtRecipe from '../examples/verifying-tokens/fastify-jwt.js'
import * as fastifyJwtJwksRecipe from '../examples/verifying-tokens/fastify-jwt-jwks.js'
import * as jsonwebtokenRecipe from '../examples/verifying-tokens/jsonwebtoken.js'
import { loginWithGoogle, startTestGateway, type TestGateway } from './support/gateway.js'

type KeyType = 'ES256' | 'RS256' | 'EdDSA'
const KEY_TYPES: KeyType[] = ['ES256', 'RS256', 'EdDSA']
const RECIPES = 'examples/verifying-tokens'

/** One library's recipe, as a function that says whether each token passed. */
type Verify = (issuer: string, audience: string, tokens: string[]) => Promise<boolean[]>

const passes = (check: (token: string) => Promise<unknown>) => (token: string) => check(token).then(() => true, () => false)

/** The resource server of a fastify recipe, asked once per token. */
function fastifyRecipe(build: (options: { issuer: string; audience: string }) => Promise<import('fastify').FastifyInstance>): Verify {
  return async (issuer, audience, tokens) => {
    const app = await build({ issuer, audience })
    try {
      const answers = []
      for (const token of tokens) answers.push(await app.inject({ method: 'GET', url: '/orders', headers: { authorization: `Bearer ${token}` } }))
      return answers.map((answer) => answer.statusCode === 200)
    } finally {
      await app.close()
    }
  }
}

/** A Python that has PyJWT, or why there is none. */
function findPython(): { python: string } | { missing: string } {
  const candidates = ['python3', '/usr/bin/python3']
  const found = candidates.filter((python) => spawnSync(python, ['--version']).status === 0)
  if (found.length === 0) return { missing: 'no python3 on this machine: the PyJWT recipe is not checked' }
  const withJwt = found.find((python) => spawnSync(python, ['-c', 'import jwt, cryptography']).status === 0)
  return withJwt ? { python: withJwt } : { missing: `python3 has no PyJWT: install Debian's python3-jwt (or pip install "pyjwt[crypto]")` }
}
const python = findPython()

/** The PyJWT recipe in a python3 process: tokens in on stdin, one verdict per token out. */
const pyjwt: Verify = async (issuer, audience, tokens) => {
  if ('missing' in python) throw new Error(python.missing)
  const driver = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(join(process.cwd(), RECIPES))})`,
    'from pyjwt_verifier import access_token_verifier',
    'verify = access_token_verifier(sys.argv[1], sys.argv[2])',
    'def passes(token):',
    '    try:',
    '        verify(token)',
    '        return True',
    '    except Exception as error:',
    '        print(repr(error), file=sys.stderr)',
    '        return False',
    'print(json.dumps([passes(token) for token in json.load(sys.stdin)]))',
  ].join('\n')
  // Not spawnSync: that would block the event loop, and with it the gateway the script fetches keys from.
  const child = spawn(python.python, ['-c', driver, issuer, audience], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  child.stdin.end(JSON.stringify(tokens))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`the PyJWT recipe failed (${code}): ${stderr}`)
  return JSON.parse(stdout) as boolean[]
}

const LIBRARIES: { name: string; file: string; keyTypes: KeyType[]; verify: Verify }[] = [
  {
    name: 'jose',
    file: 'jose.ts',
    keyTypes: ['ES256', 'RS256', 'EdDSA'],
    verify: (issuer, audience, tokens) => Promise.all(tokens.map(passes(joseRecipe.accessTokenVerifier({ issuer, audience })))),
  },
  { name: '@fastify/jwt + get-jwks', file: 'fastify-jwt.ts', keyTypes: ['ES256', 'RS256'], verify: fastifyRecipe(fastifyJwtRecipe.buildOrderService) },
  { name: 'fastify-jwt-jwks', file: 'fastify-jwt-jwks.ts', keyTypes: ['RS256', 'EdDSA'], verify: fastifyRecipe(fastifyJwtJwksRecipe.buildOrderService) },
  {
    name: 'jsonwebtoken + jwks-rsa',
    file: 'jsonwebtoken.ts',
    keyTypes: ['ES256', 'RS256'],
    verify: (issuer, audience, tokens) => Promise.all(tokens.map(passes(jsonwebtokenRecipe.accessTokenVerifier({ issuer, audience })))),
  },
  { name: 'PyJWT', file: 'pyjwt_verifier.py', keyTypes: ['ES256', 'RS256', 'EdDSA'], verify: pyjwt },
]

async function privateJwk(alg: KeyType, kid: string): Promise<jose.JWK> {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true })
  return { ...(await jose.exportJWK(privateKey)), kid, alg }
}

/** A gateway on loopback signing with one key type, and the tokens a resource server meets. */
async function gatewaySigningWith(alg: KeyType) {
  const gateway: TestGateway = await startTestGateway({
    listen: true,
    env: { SIGNING_KEYS: JSON.stringify({ keys: [await privateJwk(alg, `${alg}-key`)] }) },
  })
  const { publicUrl: issuer, tokenAudience: audience } = gateway.config
  const { accessTokens, keys } = gateway.services

  // The tokens are this test's subject, not the login: a 503 (Redis slow on a machine loaded by
  // the parallel test files) is retried with a new login, as a client would.
  let login = await loginWithGoogle(gateway, { sub: `reader-${alg}`, name: 'Reader' })
  for (let attempt = 1; login.statusCode === 503 && attempt < 4; attempt++) login = await loginWithGoogle(gateway, { sub: `reader-${alg}`, name: 'Reader' })
  if (login.statusCode !== 200) throw new Error(`the login failed: ${login.statusCode} ${login.body}`)
  const clients = new ClientDirectory(gateway.database.prisma)
  const service = await clients.create('reporting')
  await clients.grant(service.clientId, audience, ['read:report'])
  const tokenResponse = await fetch(`${issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${service.clientId}:${service.clientSecret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  })

  // Genuine, but for another service; signed by the gateway's key, but not an access token;
  // and one with the gateway's kid, signed by a key that is not the gateway's.
  const now = Math.floor(Date.now() / 1000)
  const claims = { iss: issuer, aud: audience, sub: 'someone', client_id: 'app', sid: 'session', iat: now, exp: now + 300, jti: randomUUID() }
  const foreign = (await jose.generateKeyPair(alg)).privateKey
  return {
    gateway,
    issuer,
    audience,
    accepted: { "a user's token": login.json().accessToken as string, "a client's token": ((await tokenResponse.json()) as { access_token: string }).access_token },
    refused: {
      'a token for another service': (await accessTokens.issue({ userId: 'someone', sessionId: 'session', audience: 'https://elsewhere.example' })).accessToken,
      'a JWT that is not an access token': await new jose.SignJWT(claims).setProtectedHeader({ alg, kid: keys.current.kid, typ: 'JWT' }).sign(keys.current.privateKey),
      'a forgery under the gateway’s kid': await new jose.SignJWT(claims).setProtectedHeader({ alg, kid: keys.current.kid, typ: 'at+jwt' }).sign(foreign),
    },
  }
}

for (const alg of KEY_TYPES) {
  t.test(`a gateway signing with ${alg}`, async (t) => {
    const { gateway, issuer, audience, accepted, refused } = await gatewaySigningWith(alg)
    t.teardown(() => gateway.close())
    t.equal(jose.decodeProtectedHeader(accepted["a user's token"]).alg, alg)
    t.equal(jose.decodeProtectedHeader(accepted["a client's token"]).alg, alg)

    for (const library of LIBRARIES) {
      const skip = library.name === 'PyJWT' && 'missing' in python ? python.missing : false
      t.test(library.name, { skip }, async (t: Test) => {
        const names = [...Object.keys(accepted), ...Object.keys(refused)]
        const verdicts = await library.verify(issuer, audience, [...Object.values(accepted), ...Object.values(refused)])
        const outcome = Object.fromEntries(names.map((name, i) => [name, verdicts[i]]))
        if (library.keyTypes.includes(alg)) {
          t.same(outcome, {
            "a user's token": true,
            "a client's token": true,
            'a token for another service': false,
            'a JWT that is not an access token': false,
            'a forgery under the gateway’s kid': false,
          }, `${library.name} verifies ${alg} tokens with the recipe, and refuses what is not for it`)
        } else {
          t.same(outcome[`a user's token`], false, `${library.name} cannot use ${alg} keys, as docs/verifying-tokens.md says (if it now can, update the table)`)
        }
      })
    }
  })
}

t.test('docs/verifying-tokens.md shows each recipe exactly as tested', async (t) => {
  const docs = await readFile('docs/verifying-tokens.md', 'utf8')
  for (const library of LIBRARIES) {
    const code = await readFile(join(RECIPES, library.file), 'utf8')
    t.ok(docs.includes(code), `${library.name}: the docs carry ${RECIPES}/${library.file} verbatim`)
  }
})
