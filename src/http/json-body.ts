// JSON request bodies, stricter than JSON.parse. Fastify's own parser runs first, so its
// protections stay as they are (the body limit; `__proto__` and `constructor.prototype`
// refused by secure-json-parse). Then three things JSON.parse lets through are refused:
// - a key repeated in one object: JSON.parse keeps the last, another parser (a proxy, a
//   WAF, a log reader) may keep the first, and the two would disagree about the request;
// - U+0000 in any string: no field has a use for it, and PostgreSQL cannot store it;
// - a lone surrogate (an escape such as \udc00 without its pair) in any string: it is not
//   Unicode text, and text stored with one does not come back as it went in (the embedded
//   database even refuses the bytes it was given).
// lossless-json refuses repeated keys only when their values differ, so the scan is ours.

import type { FastifyInstance } from 'fastify'
import { InvalidRequest } from '../common/errors.js'
import { hasLoneSurrogate } from '../common/profile-text.js'

export function registerStrictJsonBodies(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = String(body)
    parseJson(request, text, (error, value) => {
      if (error) return done(error, undefined)
      const problem = strictnessProblem(text)
      return problem === undefined ? done(null, value) : done(new InvalidRequest(problem), undefined)
    })
  })
}

/**
 * What is wrong with a JSON text that JSON.parse accepted, if anything. It walks the text
 * once: each string is decoded (so "\u0061" and "a" are the same key) and each object
 * keeps the set of its keys.
 */
export function strictnessProblem(json: string): string | undefined {
  /** One entry per open object (its keys so far) or array (undefined). */
  const open: (Set<string> | undefined)[] = []
  let expectingKey = false
  for (let at = 0; at < json.length; at++) {
    const char = json[at]
    if (char === '"') {
      let end = at + 1
      let escaped = false
      while (json[end] !== '"') {
        if (json[end] === '\\') {
          escaped = true
          end += 2
        } else end += 1
      }
      // JSON.parse refused raw control characters: only an escape can spell U+0000, or spell
      // a key differently. A string without one is its own text.
      const text = escaped ? (JSON.parse(json.slice(at, end + 1)) as string) : json.slice(at + 1, end)
      if (escaped && text.includes('\u0000')) return 'the body must not contain U+0000 (NUL)'
      // Raw text arrived as UTF-8, which cannot spell a lone surrogate: only an escape can.
      if (escaped && hasLoneSurrogate(text)) return 'the body must be well-formed Unicode: a surrogate escape without its pair'
      if (expectingKey) {
        const keys = open.at(-1)!
        if (keys.has(text)) return `the body has the key ${JSON.stringify(text.slice(0, 64))} more than once in one object`
        keys.add(text)
        expectingKey = false
      }
      at = end
    } else if (char === '{') {
      open.push(new Set())
      expectingKey = true
    } else if (char === '[') {
      open.push(undefined)
    } else if (char === '}' || char === ']') {
      open.pop()
    } else if (char === ',') {
      expectingKey = open.at(-1) !== undefined
    }
  }
  return undefined
}
