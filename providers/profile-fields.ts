// Profile fields as providers send them, held to exactly the rules signup applies to what a
// user types (src/common/profile-text.ts): a value that would not pass signup (a name
// with U+0000 or a bidirectional override, an http photo) counts as missing, so the user is
// asked for it, and nothing the database cannot store ever reaches it.

import type { GivenName } from './types.js'
import { checkEmail, checkNickname, checkPhoto, type CheckedText } from '../src/common/profile-text.js'

const valueOf = (checked: CheckedText) => (checked.ok ? checked.value : undefined)

/** A plausible address, lower-cased. Callers decide whether it is verified. */
export function emailOf(value: unknown): string | undefined {
  return typeof value === 'string' ? valueOf(checkEmail(value)) : undefined
}

/** A display name with at least one visible character and nothing invisible or unstorable. */
export function nicknameOf(value: unknown): string | undefined {
  return typeof value === 'string' ? valueOf(checkNickname(value)) : undefined
}

/** Photos only over https. */
export function photoOf(value: unknown): string | undefined {
  return typeof value === 'string' ? valueOf(checkPhoto(value)) : undefined
}

/**
 * A display name from given and family name, in the order the script writes it: family
 * name first and no space for Hangul, Han and Kana (홍길동), given name first otherwise.
 */
export function nameOf(name: GivenName): string | undefined {
  const given = typeof name.givenName === 'string' ? name.givenName.trim() : ''
  const family = typeof name.familyName === 'string' ? name.familyName.trim() : ''
  const eastAsian = /^[\p{Script=Hangul}\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]*$/u.test(given + family)
  return nicknameOf(eastAsian ? `${family}${given}` : `${given} ${family}`.trim())
}
