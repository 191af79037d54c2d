// What a profile's text may be: the one rule for what a user types at signup and for what a
// provider tells us, so the two can never disagree. Text is taken in Unicode NFC, so one
// name has one spelling. Refused everywhere: control characters (C0, DEL, C1: PostgreSQL
// cannot store U+0000 and none of them belongs in a name), line breaks, lone surrogates
// (not text at all), invisible characters (a name that looks like another, or like
// nothing), and bidirectional controls (text that displays in another order than it
// reads, e.g. "‮gnp.exe").
//
// A leaf: imports nothing, so providers/ can share it.

/** The profile fields a user has, and signup can require (SIGNUP_REQUIRED_FIELDS). */
export const PROFILE_FIELDS = ['nickname', 'email', 'photo'] as const
export type ProfileField = (typeof PROFILE_FIELDS)[number]

/** C0, DEL and C1 controls, and the Unicode line and paragraph separators. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u
/**
 * Zero-width and other invisible characters: zero-width space, (non-)joiners, word joiner
 * and invisible operators, byte order mark, soft hyphen, combining grapheme joiner,
 * Mongolian vowel separator, and the Hangul fillers that render as blanks.
 */
const INVISIBLE = /[\u00ad\u034f\u115f\u1160\u180e\u200b-\u200d\u2060-\u2064\u3164\ufeff\uffa0]/u
/** Bidirectional marks, embeddings, overrides and isolates. */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u
/** In a `u` regular expression, \p{Cs} matches only unpaired surrogates. */
const LONE_SURROGATE = /\p{Cs}/u
/** A letter, digit, punctuation or symbol: something a reader can see. */
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u
const EMAIL = /^[^\s@]+@[^\s@]+$/u

export const NICKNAME_MAX_LENGTH = 64
export const EMAIL_MAX_LENGTH = 254
export const PHOTO_MAX_LENGTH = 2048

/** A profile text that passed, normalised; or what is wrong with it, for the client. */
export type CheckedText = { ok: true; value: string } | { ok: false; problem: string }

/** True when the text holds a control character (C0, DEL, C1, U+2028/U+2029). */
export function hasControlCharacter(text: string): boolean {
  return CONTROL.test(text)
}

/** True when the text holds a surrogate without its pair: not Unicode text at all. */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text)
}

/** The characters no profile text may hold; undefined when there is none. */
function forbiddenIn(field: string, text: string): string | undefined {
  if (CONTROL.test(text)) return `${field} must not contain control characters or line breaks`
  if (hasLoneSurrogate(text)) return `${field} must be well-formed Unicode`
  if (INVISIBLE.test(text)) return `${field} must not contain zero-width or other invisible characters`
  if (BIDI.test(text)) return `${field} must not contain bidirectional control characters`
  return undefined
}

/** Code points, as JSON Schema's maxLength counts them. */
const lengthOf = (text: string) => [...text].length

/** A display name: NFC, trimmed, at most 64 characters, at least one of them visible. */
export function checkNickname(raw: string): CheckedText {
  const nickname = raw.normalize('NFC')
  const problem = forbiddenIn('nickname', nickname)
  if (problem) return { ok: false, problem }
  const value = nickname.trim()
  if (!VISIBLE.test(value)) return { ok: false, problem: 'nickname must have at least one visible character' }
  if (lengthOf(value) > NICKNAME_MAX_LENGTH) return { ok: false, problem: `nickname must be at most ${NICKNAME_MAX_LENGTH} characters` }
  return { ok: true, value }
}

/** An address: NFC, trimmed, lower-cased, one @ with something on each side, at most 254 characters. */
export function checkEmail(raw: string): CheckedText {
  const email = raw.normalize('NFC')
  const problem = forbiddenIn('email', email)
  if (problem) return { ok: false, problem }
  const value = email.trim().toLowerCase()
  if (!EMAIL.test(value)) return { ok: false, problem: 'email must be an address like name@example.com' }
  if (lengthOf(value) > EMAIL_MAX_LENGTH) return { ok: false, problem: `email must be at most ${EMAIL_MAX_LENGTH} characters` }
  return { ok: true, value }
}

/**
 * A photo URL, kept exactly as given (normalising would change the address): https only
 * (Kakao, for one, also serves http:// image URLs), no whitespace, at most 2048 characters.
 */
export function checkPhoto(raw: string): CheckedText {
  const problem = forbiddenIn('photo', raw)
  if (problem) return { ok: false, problem }
  const https = { ok: false, problem: 'photo must be an https URL' } as const
  if (/\s/u.test(raw)) return https
  if (lengthOf(raw) > PHOTO_MAX_LENGTH) return { ok: false, problem: `photo must be at most ${PHOTO_MAX_LENGTH} characters` }
  try {
    return new URL(raw).protocol === 'https:' ? { ok: true, value: raw } : https
  } catch {
    return https
  }
}
