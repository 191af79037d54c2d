// The syntax of what clients and roles are granted: scopes (RFC 6749 §3.3) on resources
// (RFC 8707 §2, a resource indicator is the audience of the token). Checked when an
// operator grants them and when a client asks for them.

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), no spaces, quotes or backslashes. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/

export function isScopeToken(value: string): boolean {
  return SCOPE_TOKEN.test(value)
}

/**
 * The scope tokens of a space-delimited `scope` value, in order and without repeats;
 * undefined when the value is not one (RFC 6749 §3.3).
 */
export function scopeTokensOf(scope: string): string[] | undefined {
  const tokens = scope.split(' ')
  if (!tokens.every(isScopeToken)) return undefined
  return [...new Set(tokens)]
}

/** RFC 8707 §2: an absolute URI without a fragment. */
export function isResourceIndicator(value: string): boolean {
  if (value.length > 2048 || /\s/.test(value)) return false
  try {
    return new URL(value).hash === '' && !value.includes('#')
  } catch {
    return false
  }
}
