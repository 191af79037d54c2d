// The OpenAPI document the gateway serves matches its contract: every endpoint is there,
// and the login request lists exactly the contract's fields and refuses others. It is a
// document generated clients can take as it is: valid OpenAPI; every operation with each
// answer it gives and that answer's schema; `security` on every route that takes a
// credential in the Authorization header (found by asking each route without one); the
// credential rule of the login bodies exactly as the gateway keeps it; and patterns any
// JSON Schema implementation reads (no \p{…}, no lookbehind) that accept what the gateway
// accepts.

import { compileErrors, validate } from '@readme/openapi-parser'
import { Ajv } from 'ajv'
import ajvFormats from 'ajv-formats'
import fc from 'fast-check'
import t from 'tap'
import { credentialOf, type CredentialBody } from '../src/routes/credentials.js'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'
import { startKakao } from './support/kakao.js'

// Kakao beside Google, with its admin key: its unlink callback then checks the caller's
// credential instead of refusing an unknown provider.
const { kakao, env: kakaoEnv } = await startKakao()
const gateway = await startTestGateway({ database: 'pglite', env: kakaoEnv })
t.teardown(async () => {
  await gateway.close()
  await kakao.stop()
})
const { app } = gateway

/** The subset of JSON Schema (OpenAPI 3.0 flavour) the document uses. */
interface Schema {
  type?: string
  nullable?: boolean
  enum?: unknown[]
  oneOf?: Schema[]
  anyOf?: Schema[]
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  items?: Schema
  minItems?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  minimum?: number
}

interface Parameter {
  name: string
  in: 'path' | 'query' | 'header' | 'cookie'
  required?: boolean
  schema: Schema
}

interface DocumentedResponse {
  description: string
  content?: Record<string, { schema?: Schema }>
  headers?: Record<string, unknown>
}

interface Operation {
  parameters?: Parameter[]
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> }
  responses: Record<string, DocumentedResponse>
  security?: Record<string, string[]>[]
}

interface OpenApiDocument {
  openapi: string
  paths: Record<string, Record<string, Operation>>
  components: { securitySchemes: Record<string, { type: string; scheme?: string; in?: string; name?: string }> }
}

const documentResponse = await app.inject({ method: 'GET', url: '/openapi.json' })
const document = documentResponse.json() as OpenApiDocument
/** Every operation, as `POST /auth/login`. */
const operations = Object.entries(document.paths ?? {}).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, operation]) => ({ id: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, operation })),
)

t.test('GET /openapi.json describes the contract', async (t) => {
  t.equal(documentResponse.statusCode, 200)
  t.match(document.openapi, /^3\./)
  const ids = operations.map(({ id }) => id)
  for (const operation of [
    'POST /auth/login/start',
    'POST /auth/login',
    'POST /auth/signup',
    'POST /auth/token',
    'POST /auth/logout',
    'GET /auth/me',
    'GET /auth/authorize/{provider}',
    'GET /auth/callback/{provider}',
    'POST /auth/callback/{provider}',
    'POST /auth/identities',
    'POST /auth/identities/start',
    'DELETE /auth/identities/{identityId}',
    'DELETE /auth/me',
    'DELETE /admin/users/{userId}',
    'GET /webhooks/kakao/unlink',
    'POST /webhooks/kakao/unlink',
    'POST /webhooks/apple',
    'GET /auth/sessions',
    'DELETE /auth/sessions/{sessionId}',
    'POST /auth/logout-all',
    'GET /.well-known/jwks.json',
    'GET /.well-known/openid-configuration',
    'GET /health/live',
    'GET /health/ready',
  ]) {
    t.ok(ids.includes(operation), operation)
  }
  const login = document.paths['/auth/login'].post.requestBody!.content['application/json'].schema
  t.same(Object.keys(login.properties!).sort(), ['accessToken', 'code', 'codeVerifier', 'idToken', 'name', 'nonce', 'provider', 'redirectUri', 'resource', 'state'])
  t.equal(login.additionalProperties, false, 'unknown fields are refused, as documented')
  t.same(login.required, ['provider'])
})

t.test('the document is valid OpenAPI (@readme/openapi-parser)', async (t) => {
  // validate() dereferences the document it is given in place: it gets a copy.
  const result = await validate(structuredClone(document) as unknown as Parameters<typeof validate>[0])
  t.ok(result.valid, result.valid ? 'valid' : compileErrors(result))
  t.same(result.warnings, [], 'and without warnings')
})

t.test('every operation lists its answers: a success or a redirect, its refusals, each with its schema', async (t) => {
  for (const { id, operation } of operations) {
    const statuses = Object.keys(operation.responses)
    t.ok(statuses.some((status) => /^[23]\d\d$/.test(status)), `${id}: a 2xx or 3xx answer (has ${statuses.join(', ')})`)
    t.ok(statuses.some((status) => /^4\d\d$/.test(status)), `${id}: a 4xx answer (has ${statuses.join(', ')})`)
    t.notOk(statuses.includes('default'), `${id}: no catch-all default answer`)
    for (const [status, response] of Object.entries(operation.responses)) {
      const where = `${id} ${status}`
      t.ok(response.description && response.description !== 'Default Response', `${where}: says what it means`)
      if (status === '204' || status.startsWith('3')) {
        t.notOk(response.content, `${where}: no body`)
        if (status.startsWith('3')) t.ok(response.headers?.location, `${where}: documents its Location header`)
        continue
      }
      const schema = response.content?.['application/json']?.schema
      if (!t.ok(schema, `${where}: a JSON schema`)) continue
      if (Number(status) >= 400) {
        t.ok(schema!.required?.includes('error') && schema!.required.includes('message'), `${where}: an error body requires error and message`)
        t.same([schema!.properties?.error?.type, schema!.properties?.message?.type], ['string', 'string'], `${where}: error and message are strings`)
      }
    }
  }
})

/** A value the schema accepts: every property (optional ones too), the shortest strings, a pattern's first match. */
function exampleOf(schema: Schema): unknown {
  if (schema.enum) return schema.enum[0]
  // Before oneOf: a body's oneOf only says which of its properties go together.
  if (schema.type === 'object' || schema.properties) {
    return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([name, property]) => [name, exampleOf(property)]))
  }
  if (schema.oneOf ?? schema.anyOf) return exampleOf((schema.oneOf ?? schema.anyOf)![0])
  if (schema.type === 'array') return Array.from({ length: Math.max(schema.minItems ?? 1, 1) }, () => exampleOf(schema.items ?? {}))
  if (schema.type === 'integer' || schema.type === 'number') return schema.minimum ?? 1
  if (schema.type === 'boolean') return true
  if (schema.pattern) return fc.sample(fc.stringMatching(new RegExp(schema.pattern, 'u')), { seed: 1, numRuns: 1 })[0]
  return 'x'.repeat(Math.max(schema.minLength ?? 1, 1))
}

/** A request the operation's schemas accept, without any credential. */
function anonymousRequest(path: string, method: string, operation: Operation) {
  const parameters = operation.parameters ?? []
  const valueOf = (parameter: Parameter) => String(exampleOf(parameter.schema))
  const url = path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(valueOf(parameters.find((parameter) => parameter.name === name)!)))
  const query = new URLSearchParams(parameters.filter((parameter) => parameter.in === 'query').map((parameter): [string, string] => [parameter.name, valueOf(parameter)]))
  const [contentType, media] = Object.entries(operation.requestBody?.content ?? {})[0] ?? []
  const body = media && (exampleOf(media.schema) as Record<string, unknown>)
  const payload = body === undefined ? undefined : contentType === 'application/json' ? JSON.stringify(body) : new URLSearchParams(body as Record<string, string>).toString()
  return {
    method: method as 'GET',
    url: `${url}${query.size > 0 ? `?${query}` : ''}`,
    ...(payload === undefined ? {} : { headers: { 'content-type': contentType! }, payload }),
  }
}

/**
 * The Authorization header schemes an operation's security names: `bearer` and `basic` for
 * HTTP authentication, `apiKey` for a key of its own in that header (Kakao's `KakaoAK`).
 */
function authorizationSchemesOf(operation: Operation): Set<string> {
  const names = (operation.security ?? []).flatMap((alternative) => Object.keys(alternative))
  const schemes = names.map((name) => document.components.securitySchemes[name]).filter((scheme) => scheme !== undefined)
  return new Set(
    schemes.flatMap((scheme) => (scheme.type === 'http' ? [scheme.scheme!.toLowerCase()] : scheme.type === 'apiKey' && scheme.in === 'header' && scheme.name?.toLowerCase() === 'authorization' ? ['apiKey'] : [])),
  )
}

t.test('every route that takes a credential in the Authorization header says so in `security`', async (t) => {
  const challenged: string[] = []
  for (const { id, path, method, operation } of operations) {
    for (const alternative of operation.security ?? []) {
      for (const name of Object.keys(alternative)) t.ok(document.components.securitySchemes[name], `${id}: the security scheme ${name} is defined`)
    }
    const request = anonymousRequest(path, method, operation)
    const response = await app.inject(request)
    const { message } = (response.body === '' ? {} : response.json()) as { message?: string }
    // Guards the examples: a request the route refuses for its shape never reaches the credential check.
    t.notMatch(String(message ?? ''), /^(body|querystring|params)\b/, `${id}: the example request passes validation (${response.statusCode})`)
    const challenge = /^(Bearer|Basic)\b/i.exec(String(response.headers['www-authenticate'] ?? ''))?.[1]?.toLowerCase()
    if (response.statusCode === 401 && challenge !== undefined) {
      challenged.push(id)
      // The gateway challenges with Bearer for any invalid_token, Kakao's callback key too.
      const schemes = authorizationSchemesOf(operation)
      t.ok(schemes.has(challenge) || (challenge === 'bearer' && schemes.has('apiKey')), `${id}: refuses a request without credentials (WWW-Authenticate: ${challenge}), so its security names the credential`)
    }
    const required = (operation.security ?? []).length > 0 && operation.security!.every((alternative) => Object.keys(alternative).length > 0)
    if (required) t.equal(response.statusCode, 401, `${id}: its security is required, so a request without it is refused (${response.body.slice(0, 200)})`)
  }
  // The check above found the routes it is about: every user and admin bearer route, and the OAuth endpoints.
  for (const id of ['GET /auth/me', 'DELETE /auth/me', 'POST /auth/identities', 'GET /auth/sessions', 'POST /auth/logout-all', 'GET /admin/users', 'POST /oauth/token', 'POST /webhooks/kakao/unlink']) {
    t.ok(challenged.includes(id), `${id} asks for a credential`)
  }
})

t.test('the login bodies state which credential fields go together, exactly as credentialOf keeps them', async (t) => {
  const ajv = new Ajv({ strict: false, allErrors: true })
  const values: Required<CredentialBody> = {
    code: 'c',
    redirectUri: 'https://app.example/callback',
    state: 's',
    codeVerifier: 'v'.repeat(43),
    nonce: 'n',
    idToken: 'i',
    accessToken: 'a',
  }
  const fields = Object.keys(values) as (keyof CredentialBody)[]
  for (const path of ['/auth/login', '/auth/identities']) {
    const documented = ajv.compile(document.paths[path].post.requestBody!.content['application/json'].schema)
    let accepted = 0
    // Every combination of the credential fields, each with a value the field's own schema takes.
    for (let mask = 0; mask < 2 ** fields.length; mask++) {
      const credential = Object.fromEntries(fields.filter((_, bit) => mask & (2 ** bit)).map((field) => [field, values[field]]))
      let keeps = true
      try {
        credentialOf(credential)
      } catch {
        keeps = false
      }
      accepted += keeps ? 1 : 0
      if (documented({ provider: 'google', ...credential }) !== keeps) {
        t.fail(`${path} with ${Object.keys(credential).join(', ') || 'no credential'}: the document ${keeps ? 'refuses' : 'accepts'} it, the gateway ${keeps ? 'takes' : 'refuses'} it`)
      }
    }
    t.ok(accepted > 0 && accepted < 2 ** fields.length, `${path}: ${accepted} of ${2 ** fields.length} combinations are credentials, in the document as in the gateway`)
  }
})

/** Every string a schema gives as a `pattern`, anywhere in the document, with where it is. */
function patternsIn(value: unknown, at = '#'): [string, string][] {
  if (typeof value !== 'object' || value === null) return []
  return Object.entries(value).flatMap(([key, inner]): [string, string][] =>
    key === 'pattern' && typeof inner === 'string' ? [[`${at}/pattern`, inner]] : patternsIn(inner, `${at}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`),
  )
}

t.test('every pattern is portable: no Unicode property escapes, no lookbehind', async (t) => {
  const patterns = patternsIn(document)
  t.ok(patterns.length > 5, `${patterns.length} patterns`)
  for (const [where, pattern] of patterns) {
    t.notMatch(pattern, /\\[pP]\{/, `${where}: no \\p{…} (Python's re and many validators have none)`)
    t.notMatch(pattern, /\(\?<[=!]/, `${where}: no lookbehind`)
    t.doesNotThrow(() => new RegExp(pattern), `${where}: an ECMA-262 regular expression even without the u flag`)
  }
})

t.test('a nickname the gateway accepts is accepted by the published schema, and the answers match theirs', async (t) => {
  const signup = document.paths['/auth/signup'].post
  const nickname = signup.requestBody!.content['application/json'].schema.properties!.nickname
  const ajv = new Ajv({ strict: false, allErrors: true })
  ajvFormats.default(ajv)
  const publishedNickname = ajv.compile(nickname)
  const loginAnswer = ajv.compile(document.paths['/auth/login'].post.responses['200'].content!['application/json'].schema!)
  const signupAnswer = ajv.compile(signup.responses['201'].content!['application/json'].schema!)
  const nicknames = ['Zoë', '김민준', '山田太郎', 'José 🙂', "O'Brien-Smith", '  Padded  ', 'Ω', '🙂'.repeat(64), '한'.repeat(64)]
  for (const [index, typed] of nicknames.entries()) {
    const first = await loginWithGoogle(gateway, { sub: `openapi-nickname-${index}`, email: `nickname-${index}@example.com` })
    t.equal(first.json().status, 'signup_required', `${typed}: a new identity without a name signs up`)
    t.ok(loginAnswer(first.json()), `the signup_required answer matches its schema: ${ajv.errorsText(loginAnswer.errors)}`)
    const done = await app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken: first.json().signupToken, nickname: typed } })
    t.equal(done.statusCode, 201, `the gateway accepts the nickname ${JSON.stringify(typed)}: ${done.statusCode >= 300 ? done.body : ''}`)
    t.ok(signupAnswer(done.json()), `the signup answer matches its schema: ${ajv.errorsText(signupAnswer.errors)}`)
    t.ok(publishedNickname(typed), `the published nickname schema accepts ${JSON.stringify(typed)}: ${ajv.errorsText(publishedNickname.errors)}`)
    if (nickname.pattern) t.match(typed, new RegExp(nickname.pattern, 'u'), 'and so does its pattern')
  }
})
