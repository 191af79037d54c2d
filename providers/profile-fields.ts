// Profile fields as providers send them, held to what signup accepts (src/routes/signup.ts):
// a value that would not pass signup is treated as missing, so the user is asked for it.

/** A plausible address, lower-cased, at most 254 characters. Callers decide whether it is verified. */
export function emailOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const email = value.trim().toLowerCase()
  return email.length <= 254 && /^[^\s@]+@[^\s@]+$/.test(email) ? email : undefined
}

/** At most 64 characters with at least one visible one (no blank or zero-width names). */
export function nicknameOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const nickname = value.trim()
  return nickname.length <= 64 && /[\p{L}\p{N}\p{P}\p{S}]/u.test(nickname) ? nickname : undefined
}

/** Photos only over https (Kakao, for one, also serves http:// image URLs). */
export function photoOf(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 2048 || /\s/.test(value)) return undefined
  try {
    return new URL(value).protocol === 'https:' ? value : undefined
  } catch {
    return undefined
  }
}
