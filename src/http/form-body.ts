// application/x-www-form-urlencoded bodies, for the few routes a provider POSTs a form to
// (Apple's form_post callback, Kakao's unlink callback). Registered inside those plugins
// only: the rest of the gateway stays JSON-only, so a cross-site form cannot reach it.

import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InvalidRequest } from '../common/errors.js'

export function acceptFormBodies(app: FastifyInstance, bodyLimit: number): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit }, async (_request: FastifyRequest, body: string) => singleValuedForm(body))
}

/** A form whose every field appears once: a repeated `state` or `user_id` is someone's trick. */
function singleValuedForm(body: string): Record<string, string> {
  const fields: Record<string, string> = Object.create(null)
  for (const [name, value] of new URLSearchParams(body)) {
    if (Object.hasOwn(fields, name)) throw new InvalidRequest(`the field ${name} is repeated`)
    fields[name] = value
  }
  return fields
}
