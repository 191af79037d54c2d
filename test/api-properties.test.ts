// The OpenAPI document (GET /openapi.json) is a promise to every client generated from it.
// This checks the promise by properties, operation by operation: requests generated from
// the operation's own schemas are sent to a real gateway, both schema-valid ones and ones
// broken in exactly one way (a wrong type, a missing required field, an unknown field where
// additionalProperties is false, a string too long, too short or off its pattern, a NUL
// byte or a lone surrogate in a string, malformed JSON, a wrong content type), each without
// credentials and with every valid one the operation's security names (a user's or an admin
// client's token, Kakao's admin key).
//
// Every answer must be one the document describes: a documented status, a body matching
// that status's schema, every 4xx as `{ error, message }`, and no 5xx at all (502/503/504
// are documented for provider and storage outages, and none is staged here). A schema-valid
// request may be refused for its values (an unknown provider, a token that is not valid, an
// unknown id), never for its shape: a field missing or not allowed, a type, a combination of
// fields, the body's size or content type. A broken request is refused with a 4xx (a lone
// surrogate only has to be answered as documented: the schema does not forbid one).
//
// Realistic values (the enabled providers, the allowed redirect URI, the ids of a user,
// client and role made for the operation) are mixed into the generated ones, each only where
// the field's schema accepts it, so requests reach the success answers too. The document's
// cookie parameters are sent as generated; Origin is not in the document, so none is sent.

import { Ajv, type ValidateFunction } from 'ajv'
import ajvFormats from 'ajv-formats'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { ClientDirectory } from '../src/clients/client-directory.js'
import { REDIRECT_URI, loginWithGoogle, startTestGateway } from './support/gateway.js'
import { startKakao } from './support/kakao.js'

// Kakao and Apple are enabled beside Google, so that their webhooks and Apple's form-post
// callback are answered by a configured provider rather than refused as unknown ones.
const { kakao, env: kakaoEnv } = await startKakao()
const gateway = await startTestGateway({ database: 'pglite', apple: true, env: kakaoEnv })
t.teardown(async () => {
  await gateway.close()
  await kakao.stop()
})
const { app } = gateway

// Runs per property and operation: enough to meet every branch of the document's schemas,
// few enough that the file stays well inside tap's per-file timeout on a loaded 2-CPU runner.
const NUM_RUNS = 15
t.setTimeout(300_000)
/** Generated strings are this short, but for the longest one the schema allows now and then. */
const SHORT = 24
const ORDERS = 'https://orders.example'
const JSON_TYPE = 'application/json'
const FORM_TYPE = 'application/x-www-form-urlencoded'

// ---------------------------------------------------------------------------------------
// The document, read as operations

/** The subset of JSON Schema (OpenAPI 3.0 flavour) the document uses. */
interface Schema {
  type?: string | string[]
  nullable?: boolean
  const?: unknown
  enum?: unknown[]
  oneOf?: Schema[]
  anyOf?: Schema[]
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  items?: Schema
  minItems?: number
  maxItems?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  format?: string
  minimum?: number
  maximum?: number
}

interface Parameter {
  name: string
  in: string
  required?: boolean
  schema: Schema
}

interface DocumentedResponse {
  content?: Record<string, { schema?: Schema }>
}

type Place = 'path' | 'query' | 'cookie' | 'body'
const PLACES: readonly Place[] = ['path', 'query', 'cookie', 'body']

interface Operation {
  /** `POST /auth/login` */
  id: string
  method: string
  path: string
  body?: { contentType: string; schema: Schema }
  /** Its inputs as one schema per place, so one generator and one validator serve them all. */
  inputs: Record<Exclude<Place, 'body'>, Schema> & { body?: Schema }
  responses: Record<string, DocumentedResponse>
  security?: unknown[]
}

interface DocumentedOperation {
  parameters?: Parameter[]
  requestBody?: { content: Record<string, { schema: Schema }> }
  responses?: Record<string, DocumentedResponse>
  security?: unknown[]
}

interface OpenApiDocument {
  paths: Record<string, Record<string, DocumentedOperation>>
}

function operationsOf(document: OpenApiDocument): Operation[] {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => {
      const content = operation.requestBody?.content ?? {}
      const contentType = JSON_TYPE in content ? JSON_TYPE : Object.keys(content)[0]
      const body = contentType === undefined ? undefined : { contentType, schema: content[contentType].schema }
      const parameters = operation.parameters ?? []
      return {
        id: `${method.toUpperCase()} ${path}`,
        method: method.toUpperCase(),
        path,
        body,
        inputs: { path: parametersIn(parameters, 'path'), query: parametersIn(parameters, 'query'), cookie: parametersIn(parameters, 'cookie'), body: body?.schema },
        responses: operation.responses ?? {},
        security: operation.security,
      }
    }),
  )
}

/** The parameters of one place as an object schema (a path parameter is always required). */
function parametersIn(parameters: Parameter[], place: Exclude<Place, 'body'>): Schema {
  const here = parameters.filter((parameter) => parameter.in === place)
  return {
    type: 'object',
    properties: Object.fromEntries(here.map((parameter) => [parameter.name, parameter.schema])),
    required: here.filter((parameter) => parameter.required || place === 'path').map((parameter) => parameter.name),
  }
}

// ---------------------------------------------------------------------------------------
// Validation: of generated requests (is it really valid?) and of the answers

const ajv = new Ajv({ strict: false, allErrors: false })
ajvFormats.default(ajv)
const compiled = new WeakMap<Schema, ValidateFunction>()

function validatorOf(schema: Schema): ValidateFunction {
  let validate = compiled.get(schema)
  if (!validate) {
    validate = ajv.compile(schema)
    compiled.set(schema, validate)
  }
  return validate
}

const satisfies = (schema: Schema, value: unknown) => validatorOf(schema)(value)

/** The request parts a request is generated as, before it is encoded. */
interface RequestParts {
  path: Record<string, unknown>
  query: Record<string, unknown>
  cookie: Record<string, unknown>
  body?: unknown
  /** What is sent instead of the encoded body: a malformed one, or one under another content type. */
  raw?: { contentType: string; payload: string }
}

function isSchemaValid(operation: Operation, parts: RequestParts): boolean {
  if (parts.raw) return false
  return PLACES.every((place) => {
    const schema = operation.inputs[place]
    return schema === undefined ? parts[place] === undefined : satisfies(schema, parts[place])
  })
}

// ---------------------------------------------------------------------------------------
// JSON Schema → fast-check: schema-valid values

/** Realistic values by field name, used only where the field's schema accepts them. */
type Hints = Record<string, string[]>

/** One character: mostly printable ASCII, sometimes any printable code point (never a control or a lone surrogate). */
const textUnit = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-composite', minLength: 1, maxLength: 1 }) },
)

/** Length as JSON Schema counts it: code points. */
const lengthOf = (text: string) => [...text].length

const FORMATS: Record<string, fc.Arbitrary<string>> = {
  'date-time': fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((date) => date.toISOString()),
  email: fc.emailAddress(),
  uri: fc.webUrl(),
  uuid: fc.uuid(),
}

function typesOf(schema: Schema): string[] {
  const types = schema.type === undefined ? impliedTypesOf(schema) : Array.isArray(schema.type) ? [...schema.type] : [schema.type]
  if (schema.nullable && !types.includes('null')) types.push('null')
  return types
}

/** The type a schema without `type` is about, from its keywords. */
function impliedTypesOf(schema: Schema): string[] {
  if (schema.properties || schema.required) return ['object']
  if (schema.items) return ['array']
  if (schema.pattern !== undefined || schema.minLength !== undefined || schema.maxLength !== undefined || schema.format) return ['string']
  return []
}

/** Keywords the generator does not build values for: its values are passed through the whole schema instead. */
const FILTERED_KEYWORDS = ['not', 'if', 'then', 'else', 'dependentRequired', 'dependencies', 'dependentSchemas', 'minProperties', 'maxProperties', 'uniqueItems', 'multipleOf', 'exclusiveMinimum', 'exclusiveMaximum'] as const

/** The schema the generator builds values from: allOf merged in, filtered keywords left out. */
function buildable(schema: Schema): Schema {
  const { allOf, ...rest } = schema as Schema & { allOf?: Schema[] }
  const withoutFiltered = Object.fromEntries(Object.entries(rest).filter(([keyword]) => !(FILTERED_KEYWORDS as readonly string[]).includes(keyword))) as Schema
  return (allOf ?? []).reduce(merged, withoutFiltered)
}

function arbitraryFor(schema: Schema, hints: Hints, name?: string): fc.Arbitrary<unknown> {
  if ('allOf' in schema || FILTERED_KEYWORDS.some((keyword) => keyword in schema)) {
    return arbitraryFor(buildable(schema), hints, name).filter((value) => satisfies(schema, value))
  }
  if ('const' in schema) return fc.constant(schema.const)
  if (schema.enum) return fc.constantFrom(...schema.enum)
  const alternatives = schema.oneOf ?? schema.anyOf
  if (alternatives) {
    const { oneOf: _oneOf, anyOf: _anyOf, ...common } = schema
    return fc.oneof(...alternatives.map((alternative) => arbitraryFor(merged(common, alternative), hints, name))).filter((value) => satisfies(schema, value))
  }
  const types = typesOf(schema)
  if (types.length === 0) return fc.jsonValue({ maxDepth: 2 }).filter((value) => satisfies(schema, value))
  if (types.length > 1) return fc.oneof(...types.map((type) => arbitraryFor({ ...schema, type, nullable: false }, hints, name)))
  switch (types[0]) {
    case 'object':
      return objectArbitrary(schema, hints)
    case 'array':
      return arrayArbitrary(schema, hints, name)
    case 'string':
      return stringArbitrary(schema, hints, name)
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1_000_000, max: schema.maximum ?? 1_000_000 })
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true, noDefaultInfinity: true })
    case 'boolean':
      return fc.boolean()
    case 'null':
      return fc.constant(null)
    default:
      throw new Error(`the generator does not know the type ${types[0]}`)
  }
}

/** A oneOf/anyOf branch with what its parent says for every branch. */
function merged(common: Schema, branch: Schema): Schema {
  const schema = { ...common, ...branch }
  if (common.properties || branch.properties) schema.properties = { ...common.properties, ...branch.properties }
  if (common.required || branch.required) schema.required = [...new Set([...(common.required ?? []), ...(branch.required ?? [])])]
  return schema
}

function objectArbitrary(schema: Schema, hints: Hints): fc.Arbitrary<unknown> {
  const required = schema.required ?? []
  const model: Record<string, fc.Arbitrary<unknown>> = {}
  for (const [key, property] of Object.entries(schema.properties ?? {})) model[key] = arbitraryFor(property, hints, key)
  for (const key of required) model[key] ??= fc.string({ maxLength: 8 })
  return fc.record(model, { requiredKeys: required })
}

function arrayArbitrary(schema: Schema, hints: Hints, name?: string): fc.Arbitrary<unknown> {
  const minLength = schema.minItems ?? 0
  const maxLength = Math.max(minLength, Math.min(schema.maxItems ?? 4, 4))
  return fc.array(arbitraryFor(schema.items ?? {}, hints, name), { minLength, maxLength })
}

function stringArbitrary(schema: Schema, hints: Hints, name?: string): fc.Arbitrary<string> {
  const fits = (text: string) => lengthOf(text) >= (schema.minLength ?? 0) && lengthOf(text) <= (schema.maxLength ?? Infinity)
  const generated = schema.pattern
    ? fc.stringMatching(new RegExp(schema.pattern), { size: 'small' }).filter(fits)
    : schema.format && FORMATS[schema.format]
      ? FORMATS[schema.format].filter(fits)
      : plainString(schema.minLength ?? 0, schema.maxLength)
  const known = (name === undefined ? [] : (hints[name] ?? [])).filter((value) => satisfies(schema, value))
  return known.length === 0 ? generated : fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...known) }, { weight: 2, arbitrary: generated })
}

function plainString(minLength: number, maxLength: number | undefined): fc.Arbitrary<string> {
  const short = fc.string({ unit: textUnit, minLength, maxLength: Math.max(minLength, Math.min(maxLength ?? SHORT, SHORT)) })
  if (maxLength === undefined || maxLength <= SHORT) return short
  // The longest string the document allows (in ASCII, so it is that long however counted).
  const longest = fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 4 }).map((seed) => seed.repeat(Math.ceil(maxLength / seed.length)).slice(0, maxLength))
  return fc.oneof({ weight: 6, arbitrary: short }, { weight: 1, arbitrary: longest })
}

/** Schema-valid request parts for the operation; a path parameter is never empty (that names another route). */
function validParts(operation: Operation, hints: Hints): fc.Arbitrary<RequestParts> {
  const pathSchema = operation.inputs.path
  const nonEmpty: Schema = {
    ...pathSchema,
    properties: Object.fromEntries(Object.entries(pathSchema.properties ?? {}).map(([key, schema]) => [key, { ...schema, minLength: Math.max(1, schema.minLength ?? 0) }])),
  }
  return fc.record({
    path: arbitraryFor(nonEmpty, hints) as fc.Arbitrary<Record<string, unknown>>,
    query: arbitraryFor(operation.inputs.query, hints) as fc.Arbitrary<Record<string, unknown>>,
    cookie: arbitraryFor(operation.inputs.cookie, hints) as fc.Arbitrary<Record<string, unknown>>,
    body: operation.body ? arbitraryFor(operation.body.schema, hints) : fc.constant(undefined),
  })
}

// ---------------------------------------------------------------------------------------
// Schema-invalid requests: a valid one, broken in one place

type BreakageKind =
  | 'wrong type'
  | 'missing required field'
  | 'unknown field'
  | 'over maxLength'
  | 'under minLength'
  | 'pattern mismatch'
  | 'NUL byte'
  | 'lone surrogate'
  | 'malformed JSON'
  | 'wrong content type'

interface Breakage {
  kind: BreakageKind
  /** `body.name.givenName`, `query.limit`, `path.userId`, `body` */
  where: string
  apply(parts: RequestParts): fc.Arbitrary<RequestParts>
}

type Key = string | number

/** A value the generator can break: where it sits and its schema. */
interface Slot {
  place: Place
  at: Key[]
  schema: Schema
}

function slotsIn(place: Place, schema: Schema, at: Key[] = []): Slot[] {
  const inner = schema.properties
    ? Object.entries(schema.properties).flatMap(([key, property]) => slotsIn(place, property, [...at, key]))
    : schema.items
      ? slotsIn(place, schema.items, [...at, 0])
      : []
  return [{ place, at, schema }, ...inner]
}

const whereOf = (slot: Pick<Slot, 'place' | 'at'>) => [slot.place, ...slot.at].join('.')
const REMOVE = Symbol('remove')

/** A copy of the parts with the value at place/at set (or removed), making the containers on the way. */
function withValueAt(parts: RequestParts, place: Place, at: Key[], value: unknown): RequestParts {
  const copy = structuredClone(parts)
  if (at.length === 0) {
    copy[place] = value as Record<string, unknown>
    return copy
  }
  if (typeof copy[place] !== 'object' || copy[place] === null) copy[place] = {}
  let container = copy[place] as Record<Key, unknown>
  for (const [index, key] of at.slice(0, -1).entries()) {
    if (typeof container[key] !== 'object' || container[key] === null) container[key] = typeof at[index + 1] === 'number' ? [] : {}
    container = container[key] as Record<Key, unknown>
  }
  const last = at.at(-1)!
  if (value === REMOVE) delete container[last]
  else container[last] = value
  return copy
}

/** What the gateway must refuse: everything but a lone surrogate, which the schema does not forbid. */
const MUST_BE_REFUSED: ReadonlySet<BreakageKind> = new Set<BreakageKind>([
  'wrong type',
  'missing required field',
  'unknown field',
  'over maxLength',
  'under minLength',
  'pattern mismatch',
  'NUL byte',
  'malformed JSON',
  'wrong content type',
])

/** A JSON value of each type, to put where the schema wants another. */
const ONE_OF_EACH_TYPE: [string, unknown][] = [
  ['string', 'text'],
  ['integer', 7],
  ['number', 1.5],
  ['boolean', true],
  ['object', {}],
  ['array', []],
  ['null', null],
]

/** Cookies are what a browser sends back, not what a client composes: broken ones are test/bad-input.test.ts's. */
function breakagesOf(operation: Operation, hints: Hints): Breakage[] {
  const slots = (['path', 'query', 'body'] as const).flatMap((place) => {
    const schema = operation.inputs[place]
    return schema === undefined ? [] : slotsIn(place, schema)
  })
  const isForm = operation.body?.contentType === FORM_TYPE
  return [
    ...slots.flatMap((slot) => slotBreakages(slot, hints, isForm)),
    ...(operation.body ? bodyBreakages(operation.body.contentType) : []),
  ]
}

function slotBreakages(slot: Slot, hints: Hints, isForm: boolean): Breakage[] {
  const where = whereOf(slot)
  const set = (value: unknown) => (parts: RequestParts) => withValueAt(parts, slot.place, slot.at, value)
  const types = typesOf(slot.schema)
  const breakages: Breakage[] = []
  // Query strings and form bodies carry strings only: there, a wrong type is a field sent twice.
  const carriesStrings = slot.place === 'query' || (slot.place === 'body' && isForm)
  if (slot.place === 'body' && !isForm) {
    const wrong = ONE_OF_EACH_TYPE.filter(([type]) => !types.includes(type) && !(type === 'integer' && types.includes('number'))).map(([, value]) => value)
    if (types.length > 0 && wrong.length > 0) breakages.push({ kind: 'wrong type', where, apply: (parts) => fc.constantFrom(...wrong).map((value) => set(value)(parts)) })
  } else if (carriesStrings && slot.at.length === 1) {
    breakages.push({ kind: 'wrong type', where, apply: (parts) => stringArbitrary(slot.schema, hints).map((value) => set([value, value])(parts)) })
  }
  if (types.includes('object') && slot.place !== 'path') {
    for (const key of slot.schema.required ?? []) {
      breakages.push({ kind: 'missing required field', where: `${where}.${key}`, apply: (parts) => fc.constant(withValueAt(parts, slot.place, [...slot.at, key], REMOVE)) })
    }
    if (slot.schema.additionalProperties === false) {
      breakages.push({ kind: 'unknown field', where: `${where}.unexpected`, apply: (parts) => fc.constant(withValueAt(parts, slot.place, [...slot.at, 'unexpected'], 'x')) })
    }
  }
  if (types.includes('string')) breakages.push(...stringBreakages(slot, hints, set))
  return breakages
}

function stringBreakages(slot: Slot, hints: Hints, set: (value: unknown) => (parts: RequestParts) => RequestParts): Breakage[] {
  const where = whereOf(slot)
  const { maxLength, minLength, pattern } = slot.schema
  const breakages: Breakage[] = []
  if (maxLength !== undefined) {
    breakages.push({ kind: 'over maxLength', where, apply: (parts) => fc.integer({ min: maxLength + 1, max: maxLength + 3 }).map((length) => set('a'.repeat(length))(parts)) })
  }
  // An empty path segment names another route, not this one with an empty parameter.
  if (minLength !== undefined && minLength > 0 && !(slot.place === 'path' && minLength === 1)) {
    breakages.push({ kind: 'under minLength', where, apply: (parts) => fc.constant(set('a'.repeat(minLength - 1))(parts)) })
  }
  if (pattern !== undefined) {
    const matches = new RegExp(pattern)
    const candidates = fc.string({ unit: textUnit, minLength: 1, maxLength: 12 })
    // Offered only when strings off the pattern exist among the candidates (a filter that never passes would hang).
    if (fc.sample(candidates, { numRuns: 100, seed: 1 }).some((text) => !matches.test(text))) {
      breakages.push({ kind: 'pattern mismatch', where, apply: (parts) => candidates.filter((text) => !matches.test(text)).map((value) => set(value)(parts)) })
    }
  }
  const inserted = (kind: BreakageKind, characters: string[]): Breakage => ({
    kind,
    where,
    apply: (parts) =>
      fc.tuple(stringArbitrary(slot.schema, hints), fc.nat(), fc.constantFrom(...characters)).map(([text, at, character]) => {
        const points = [...text]
        points.splice(at % (points.length + 1), 0, character)
        return set(points.join(''))(parts)
      }),
  })
  breakages.push(inserted('NUL byte', ['\u0000']), inserted('lone surrogate', ['\ud800', '\udbff', '\udc00', '\udfff']))
  return breakages
}

function bodyBreakages(contentType: string): Breakage[] {
  const breakages: Breakage[] = []
  if (contentType === JSON_TYPE) {
    breakages.push({
      kind: 'malformed JSON',
      where: 'body',
      apply: (parts) => {
        const text = JSON.stringify(parts.body)
        return fc
          .oneof(
            fc.nat({ max: Math.max(0, text.length - 1) }).map((length) => text.slice(0, length)),
            fc.constantFrom('}', ',', ']', 'x').map((junk) => text + junk),
            fc.constant(text.replace(/"/g, "'")),
          )
          .filter(isMalformedJson)
          .map((payload) => ({ ...parts, raw: { contentType: JSON_TYPE, payload } }))
      },
    })
  }
  const others = ['text/plain', 'application/xml', contentType === JSON_TYPE ? FORM_TYPE : JSON_TYPE]
  breakages.push({
    kind: 'wrong content type',
    where: 'body',
    apply: (parts) => fc.constantFrom(...others).map((other) => ({ ...parts, raw: { contentType: other, payload: encodedBody(other === FORM_TYPE || other === JSON_TYPE ? other : contentType, parts.body) } })),
  })
  return breakages
}

function isMalformedJson(text: string): boolean {
  try {
    JSON.parse(text)
    return false
  } catch {
    return true
  }
}

// ---------------------------------------------------------------------------------------
// Encoding a generated request

type Credential = 'none' | 'user' | 'admin' | 'kakao'
/** The Authorization header each credential is sent as (none: no header). */
type Authorizations = Record<Credential, string | undefined>

interface Generated {
  credential: Credential
  parts: RequestParts
  /** Absent for a schema-valid request. */
  breakage?: { kind: BreakageKind; where: string }
}

/** encodeURIComponent, but a lone surrogate is sent as the three bytes a careless encoder would send (WTF-8). */
function percentEncoded(text: string): string {
  let encoded = ''
  for (const character of text) {
    const unit = character.charCodeAt(0)
    encoded +=
      character.length === 1 && unit >= 0xd800 && unit <= 0xdfff
        ? [0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)].map((byte) => `%${byte.toString(16).toUpperCase()}`).join('')
        : encodeURIComponent(character)
  }
  return encoded
}

/**
 * A path parameter as a client sends it: percent-encoded, and a value of "." or ".." with
 * its dots escaped too, since a bare dot segment is removed by URL normalisation (RFC 3986
 * §5.2.4) before any server sees it.
 */
function pathSegment(value: string): string {
  return value === '.' || value === '..' ? value.replaceAll('.', '%2E') : percentEncoded(value)
}

function formEncoded(fields: unknown): string {
  if (typeof fields !== 'object' || fields === null) return ''
  return Object.entries(fields)
    .flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((one) => `${percentEncoded(name)}=${percentEncoded(typeof one === 'string' ? one : JSON.stringify(one))}`))
    .join('&')
}

const encodedBody = (contentType: string, body: unknown) => (contentType === FORM_TYPE ? formEncoded(body) : JSON.stringify(body))

function injected(operation: Operation, generated: Generated, authorizations: Authorizations): InjectOptions {
  const { parts } = generated
  const path = operation.path.replace(/\{([^}]+)\}/g, (_, name: string) => pathSegment(String(parts.path[name])))
  const query = formEncoded(parts.query)
  const headers: Record<string, string> = {}
  const authorization = authorizations[generated.credential]
  if (authorization !== undefined) headers.authorization = authorization
  const cookies = Object.entries(parts.cookie).map(([name, value]) => `${name}=${percentEncoded(String(value))}`)
  if (cookies.length > 0) headers.cookie = cookies.join('; ')
  const request: InjectOptions = { method: operation.method as InjectOptions['method'], url: query ? `${path}?${query}` : path, headers }
  if (parts.raw) {
    headers['content-type'] = parts.raw.contentType
    request.payload = parts.raw.payload
  } else if (operation.body && parts.body !== undefined) {
    headers['content-type'] = operation.body.contentType
    request.payload = encodedBody(operation.body.contentType, parts.body)
  }
  return request
}

// ---------------------------------------------------------------------------------------
// Judging an answer

function documentedResponseOf(operation: Operation, status: number): DocumentedResponse | undefined {
  return operation.responses[String(status)] ?? operation.responses[`${String(status)[0]}XX`] ?? operation.responses.default
}

function parsedJson(response: LightMyRequestResponse): unknown {
  try {
    return response.json()
  } catch {
    return undefined
  }
}

/** What every answer must be, valid request or not. */
function answerProblems(operation: Operation, response: LightMyRequestResponse): string[] {
  const status = response.statusCode
  const problems: string[] = []
  // 502/503/504 are documented for provider and storage outages; none is staged here
  // (the emulator, Redis and the database are up), so any 5xx is a failure.
  if (status >= 500) problems.push(`a ${status}: no 5xx is expected here (no provider or storage outage is staged)`)
  const documented = documentedResponseOf(operation, status)
  if (!documented) problems.push(`status ${status} is not documented (the document has ${Object.keys(operation.responses).join(', ')})`)
  else problems.push(...bodyProblems(status, documented, response))
  if (status >= 400 && status < 500) problems.push(...errorBodyProblems(response))
  return problems
}

function bodyProblems(status: number, documented: DocumentedResponse, response: LightMyRequestResponse): string[] {
  const content = documented.content ?? {}
  const contentType = String(response.headers['content-type'] ?? '')
  if (Object.keys(content).length === 0) {
    return response.body.length === 0 ? [] : [`the document gives no body for ${status}, but the answer has one (${contentType})`]
  }
  const json = content[JSON_TYPE]
  if (!json) {
    return Object.keys(content).some((type) => contentType.startsWith(type)) ? [] : [`answered as ${contentType}, documented as ${Object.keys(content).join(', ')}`]
  }
  if (!contentType.startsWith(JSON_TYPE)) return [`documented as ${JSON_TYPE} for ${status}, answered as "${contentType}"`]
  const body = parsedJson(response)
  if (body === undefined) return [`the ${status} body is not JSON`]
  if (!json.schema) return []
  const validate = validatorOf(json.schema)
  return validate(body) ? [] : [`the ${status} body does not match its documented schema: ${ajv.errorsText(validate.errors, { dataVar: 'body' })}`]
}

function errorBodyProblems(response: LightMyRequestResponse): string[] {
  const body = parsedJson(response) as { error?: unknown; message?: unknown } | undefined
  if (typeof body !== 'object' || body === null) return [`a ${response.statusCode} without a JSON body`]
  return typeof body.error === 'string' && typeof body.message === 'string' ? [] : [`a ${response.statusCode} that is not { error, message } with string values`]
}

/** How the gateway words a refusal of a request's shape (fastify's validation, its parsers). */
const SHAPE_REFUSAL =
  /must have required property|unknown field|must NOT have additional properties|must be (string|integer|number|boolean|object|array|null)\b|must NOT have (more|fewer) than|must match (pattern|format)|must be equal to|is not valid JSON|JSON body is empty|the request is malformed|is repeated|more than once|send the (body|request) as/
/** How it words a rule on which fields go together, which the document does not state. */
const FIELD_RULE_REFUSAL = /missing required fields|send exactly one|not both|takes no other fields|send no |do not send|needs the /

/** A schema-valid request may be refused for its values, never for its shape. */
/**
 * The documented size limits, which JSON Schema cannot state (a field's maxLength counts
 * characters, the limits count encoded bytes): the smallest body limit of any route (the
 * OAuth forms' 4 KB) and the router's 100-character path segment. A 413 or 414 for a request
 * within them is a refusal the document does not allow.
 */
const SMALLEST_BODY_LIMIT = 4096
const PATH_SEGMENT_LIMIT = 100

function withinSizeLimits(request: InjectOptions): boolean {
  const body = request.payload === undefined ? 0 : Buffer.byteLength(String(request.payload))
  const segments = String(request.url).split('?')[0]!.split('/')
  return body <= SMALLEST_BODY_LIMIT && segments.every((segment) => segment.length <= PATH_SEGMENT_LIMIT)
}

function shapeRefusalProblems(request: InjectOptions, response: LightMyRequestResponse): string[] {
  const status = response.statusCode
  const { error, message } = (parsedJson(response) ?? {}) as { error?: string; message?: string }
  if (status === 415 || ((status === 413 || status === 414) && withinSizeLimits(request))) {
    return [`a schema-valid request was refused with ${status} ${error}: "${message}" (the document allows it)`]
  }
  if (status !== 400 || typeof message !== 'string') return []
  if (SHAPE_REFUSAL.test(message)) return [`a schema-valid request was refused for its shape: "${message}" (the gateway checks more than the document says)`]
  if (FIELD_RULE_REFUSAL.test(message)) return [`a schema-valid request was refused for a combination of fields the document does not state: "${message}"`]
  return []
}

function refusalProblems(breakage: NonNullable<Generated['breakage']>, response: LightMyRequestResponse): string[] {
  const status = response.statusCode
  if (!MUST_BE_REFUSED.has(breakage.kind) || (status >= 400 && status < 500)) return []
  return [`a request with a ${breakage.kind} at ${breakage.where} must be refused with a 4xx, got ${status}`]
}

const clipped = (text: string, length = 600) => (text.length > length ? `${text.slice(0, length)}… (${text.length} characters)` : text)

function report(generated: Generated, request: InjectOptions, response: LightMyRequestResponse, problems: string[]): string {
  const headers = request.headers as Record<string, string>
  return [
    ...problems.map((problem) => `- ${problem}`),
    `request (${generated.breakage ? `${generated.breakage.kind} at ${generated.breakage.where}` : 'schema-valid'}, ${CREDENTIAL_NAMES[generated.credential]}):`,
    `  ${request.method} ${request.url}`,
    ...(headers.cookie ? [`  cookie: ${clipped(headers.cookie, 200)}`] : []),
    ...(headers['content-type'] ? [`  content-type: ${headers['content-type']}`] : []),
    ...(request.payload !== undefined ? [`  ${clipped(String(request.payload))}`] : []),
    `answer: ${response.statusCode} ${response.headers['content-type'] ?? '(no content-type)'}${response.headers.location ? ` location: ${response.headers.location}` : ''}`,
    `  ${clipped(response.body) || '(empty)'}`,
  ].join('\n')
}

// ---------------------------------------------------------------------------------------
// Who calls: no one, a user, an admin client, Kakao

const CREDENTIAL_NAMES: Record<Credential, string> = { none: 'no credentials', user: "a user's token", admin: "an admin client's token", kakao: "Kakao's admin key" }

/** Routes that take a user's bearer token, whether or not their document says so (yet). */
const USER_BEARER_ROUTES = new Set(['GET /auth/me', 'GET /auth/sessions', 'DELETE /auth/sessions/{sessionId}', 'POST /auth/logout-all', 'POST /auth/logout'])

/**
 * Every operation is called without credentials, and with each valid one its security
 * names. The OAuth endpoints' clients (clientSecretBasic) authenticate with the body's
 * client_id and client_secret instead, which the realistic values fill in: a Basic header
 * beside them is refused, as RFC 6749 §2.3 says.
 */
function credentialsFor(operation: Operation): Credential[] {
  // The admin routes take an admin client's token (their security says bearer, as a user's
  // routes do); a user's token there is the documented 403.
  if (operation.path.startsWith('/admin/')) return ['none', 'user', 'admin']
  const schemes = new Set((operation.security ?? []).flatMap((requirement) => Object.keys(requirement as object)))
  const credentials: Credential[] = ['none']
  if (schemes.has('bearer') || USER_BEARER_ROUTES.has(operation.id)) credentials.push('user')
  if (schemes.has('kakaoAdminKey')) credentials.push('kakao')
  return credentials
}

const clients = new ClientDirectory(gateway.database.prisma)
const adminClient = await clients.create('api-properties admin')
await clients.grant(adminClient.clientId, gateway.config.tokenAudience, ['admin'])
const adminToken = await clientCredentialsToken(adminClient.clientId, adminClient.clientSecret)

async function clientCredentialsToken(clientId: string, clientSecret: string): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: { 'content-type': FORM_TYPE, authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}` },
    payload: new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
  })
  if (response.statusCode !== 200) throw new Error(`the admin client got no token: ${response.body}`)
  return response.json().access_token as string
}

/** What each operation's requests may name: a user with a session and an identity, a client, a role. */
interface Fixture {
  accessToken: string
  refreshToken: string
  userId: string
  sub: string
  email: string
  identityId: string
  sessionId: string
  clientId: string
  clientSecret: string
  role: string
}

let fixtureCount = 0
let sharedFixture: Promise<Fixture> | undefined

/**
 * A fresh one per operation that can change something: what one operation's requests do
 * (delete, log out, rotate a refresh token) never reaches another's. A GET changes nothing,
 * so the GET operations share one.
 */
function fixtureFor(operation: Operation): Promise<Fixture> {
  if (operation.method !== 'GET') return newFixture()
  sharedFixture ??= newFixture()
  return sharedFixture
}

async function newFixture(): Promise<Fixture> {
  const n = ++fixtureCount
  const sub = `api-properties-${n}`
  const email = `${sub}@example.com`
  const login = await loginWithGoogle(gateway, { sub, email, name: `Property ${n}` })
  if (login.statusCode !== 200 || login.json().status !== 'authenticated') throw new Error(`fixture login failed: ${login.body}`)
  const { accessToken, refreshToken, user } = login.json() as { accessToken: string; refreshToken: string; user: { id: string } }
  const asUser = { authorization: `Bearer ${accessToken}` }
  const me = await succeeded({ method: 'GET', url: '/auth/me', headers: asUser })
  const sessions = await succeeded({ method: 'GET', url: '/auth/sessions', headers: asUser })
  const asAdmin = { authorization: `Bearer ${adminToken}` }
  const client = await succeeded({ method: 'POST', url: '/admin/clients', headers: asAdmin, payload: { name: `api-properties ${n}` } })
  const { clientId, clientSecret } = client.json() as { clientId: string; clientSecret: string }
  const grant = { resource: ORDERS, scopes: ['read:order'] }
  await succeeded({ method: 'POST', url: `/admin/clients/${clientId}/grants`, headers: asAdmin, payload: grant })
  const role = `api-properties-${n}`
  await succeeded({ method: 'POST', url: '/admin/roles', headers: asAdmin, payload: { name: role } })
  await succeeded({ method: 'POST', url: `/admin/roles/${role}/grants`, headers: asAdmin, payload: grant })
  await succeeded({ method: 'POST', url: `/admin/users/${user.id}/roles`, headers: asAdmin, payload: { role } })
  return {
    accessToken,
    refreshToken,
    userId: user.id,
    sub,
    email,
    identityId: (me.json() as { identities: { id: string }[] }).identities[0].id,
    sessionId: (sessions.json() as { sessions: { id: string }[] }).sessions[0].id,
    clientId,
    clientSecret,
    role,
  }
}

async function succeeded(request: InjectOptions): Promise<LightMyRequestResponse> {
  const response = await app.inject(request)
  if (response.statusCode >= 300) throw new Error(`fixture ${request.method} ${request.url} failed: ${response.statusCode} ${response.body}`)
  return response
}

function hintsFrom(fixture: Fixture): Hints {
  return {
    provider: ['google', 'kakao', 'apple'],
    app_id: [kakao.appId],
    redirectUri: [REDIRECT_URI],
    returnTo: [REDIRECT_URI],
    resource: [gateway.config.tokenAudience, ORDERS],
    grant_type: ['client_credentials'],
    token_type_hint: ['access_token'],
    scope: ['read:order'],
    scopes: ['read:order', 'write:order'],
    userId: [fixture.userId],
    subject: [fixture.sub],
    email: [fixture.email],
    identityId: [fixture.identityId],
    sessionId: [fixture.sessionId],
    refreshToken: [fixture.refreshToken],
    token: [fixture.accessToken],
    clientId: [fixture.clientId],
    client_id: [fixture.clientId],
    client_secret: [fixture.clientSecret],
    role: [fixture.role],
  }
}

// ---------------------------------------------------------------------------------------
// The properties

function validRequests(operation: Operation, hints: Hints): fc.Arbitrary<Generated> {
  return fc.record({ credential: fc.constantFrom(...credentialsFor(operation)), parts: validParts(operation, hints) })
}

function invalidRequests(operation: Operation, breakages: Breakage[], hints: Hints): fc.Arbitrary<Generated> {
  return fc
    .tuple(fc.constantFrom(...credentialsFor(operation)), validParts(operation, hints), fc.constantFrom(...breakages))
    .chain(([credential, parts, breakage]) =>
      breakage.apply(parts).map((broken): Generated => ({ credential, parts: broken, breakage: { kind: breakage.kind, where: breakage.where } })),
    )
}

/** Sends one generated request; throws the request, the answer and what is wrong with it. */
async function exchange(operation: Operation, generated: Generated, authorizations: Authorizations): Promise<void> {
  const valid = isSchemaValid(operation, generated.parts)
  if (!generated.breakage && !valid) {
    throw new Error(`the generator made a request its schema refuses (a bug in this test): ${JSON.stringify(generated.parts)}`)
  }
  // A breakage that left the request valid after all (a field removed from where another branch allows it) is skipped.
  fc.pre(!(generated.breakage && MUST_BE_REFUSED.has(generated.breakage.kind) && valid))
  const request = injected(operation, generated, authorizations)
  const response = await app.inject(request)
  const problems = [
    ...answerProblems(operation, response),
    ...(generated.breakage ? refusalProblems(generated.breakage, response) : shapeRefusalProblems(request, response)),
  ]
  if (problems.length > 0) throw new Error(report(generated, request, response, problems))
}

async function holds(t: Test, what: string, arbitrary: fc.Arbitrary<Generated>, check: (generated: Generated) => Promise<void>): Promise<void> {
  try {
    await fc.assert(fc.asyncProperty(arbitrary, check), { numRuns: NUM_RUNS })
    t.pass(what)
  } catch (error) {
    // fast-check 4 keeps the property's own error (the request and the answer) as the cause.
    const { message, cause } = error as Error
    const counterexample = message.split('\n').map((line) => clipped(line, 300)).join('\n')
    t.fail(what, { diagnostic: true, found: cause instanceof Error ? `${cause.message}\n\n${counterexample}` : counterexample, at: null, stack: '' })
  }
}

const documentResponse = await app.inject({ method: 'GET', url: '/openapi.json' })
if (documentResponse.statusCode !== 200) throw new Error(`GET /openapi.json answered ${documentResponse.statusCode}`)
const operations = operationsOf(documentResponse.json() as OpenApiDocument)

t.test('the document has operations to check', async (t) => {
  t.ok(operations.length > 0, `${operations.length} operations`)
})

// Every documented operation is exercised: each can be driven in-process with inject (a
// redirect is an answer like any other), and the hidden routes (the demo, /openapi.json)
// are not in the document.
for (const operation of operations) {
  t.test(operation.id, async (t) => {
    const fixture = await fixtureFor(operation)
    const hints = hintsFrom(fixture)
    const authorizations: Authorizations = {
      none: undefined,
      user: `Bearer ${fixture.accessToken}`,
      admin: `Bearer ${adminToken}`,
      kakao: `KakaoAK ${kakao.adminKey}`,
    }
    const check = (generated: Generated) => exchange(operation, generated, authorizations)
    await holds(t, 'schema-valid requests are answered as documented, never refused for their shape', validRequests(operation, hints), check)
    const breakages = breakagesOf(operation, hints)
    if (breakages.length === 0) {
      t.pass('nothing to break: the document describes no input for this operation')
      return
    }
    await holds(t, 'schema-invalid requests are refused with a 4xx, answered as documented', invalidRequests(operation, breakages, hints), check)
  })
}
