import { isLoopbackUrl } from '../src/common/loopback.js'

/** A provider base URL from the environment: https anywhere; plain http in development, and in production only on loopback. */
export function readProviderUrl(
  env: Record<string, string | undefined>,
  name: string,
  fallback: string,
  problems: string[],
  production: boolean,
): string {
  const value = env[name]?.trim() || fallback
  let url: URL
  try {
    url = new URL(value)
  } catch {
    problems.push(`${name}: "${value}" is not a URL`)
    return fallback
  }
  if (url.protocol === 'https:') return value.replace(/\/+$/, '')
  if (url.protocol === 'http:' && (isLoopbackUrl(url) || !production)) return value.replace(/\/+$/, '')
  problems.push(`${name}: "${value}" must be https (plain http only on loopback)`)
  return fallback
}
