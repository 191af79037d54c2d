// Key sets as operators give them (a JWK set as JSON, or a path to such a file) and as
// development keeps its generated keys on disk. Shared by signing and encryption keys.

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type * as jose from 'jose'
import { ConfigError } from '../common/errors.js'

/** The keys of `source`, JSON text or a file path; `variable` names the setting in errors. */
export async function readJwkSet(source: string, variable: string): Promise<jose.JWK[]> {
  let text = source
  if (!source.trimStart().startsWith('{') && !source.trimStart().startsWith('[')) {
    try {
      text = await readFile(source, 'utf8')
    } catch {
      throw new ConfigError([`${variable}: cannot read the key file "${source}"`])
    }
  }
  try {
    const parsed = JSON.parse(text) as unknown
    const keys = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown }).keys ?? [parsed]
    if (!Array.isArray(keys)) throw new Error('not a JWK set')
    return keys as jose.JWK[]
  } catch {
    throw new ConfigError([`${variable} must be a JWK set ({"keys":[...]}) as JSON or a path to such a file`])
  }
}

/** Writes generated development keys readable by the owner only, replacing the file atomically. */
export async function writeKeyFile(file: string, keys: jose.JWK[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const temporary = `${file}.${process.pid}.tmp`
  await writeFile(temporary, JSON.stringify({ keys }, null, 2), { mode: 0o600 })
  await rename(temporary, file)
}
