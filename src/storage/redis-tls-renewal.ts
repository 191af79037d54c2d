// Certificates are renewed while the gateway runs: cert-manager, a Vault agent or a cron job
// writes a new client certificate and key some days before the old pair expires, and adds a
// new authority to the bundle before Redis' own certificate moves to it. A gateway that read
// its files only at start-up would show the old certificate on its next reconnect (after a
// failover, a dropped link, a Redis restart) and, once it expired, reach no Redis at all
// until someone restarted it.
//
// Every Redis connection takes its TLS options from one object when it connects (ioredis
// copies `tls` into each connect; a Cluster's node connections and a Sentinel group's
// connections share the same object), so the renewed files are read into that object, in
// place: every connection made from then on shows them. Open connections stay as they are;
// the server checked their certificate when they opened.
//
// The files are polled (fs.watchFile stats them, following symlinks, which is how Kubernetes
// swaps a mounted secret). They change one at a time: a new certificate with the old key is
// not taken, nor is anything that start-up would refuse (loadRedisTls' checks); the previous
// options stay, with a warning naming the setting and the file, until the files agree.

import { unwatchFile, watchFile, type Stats } from 'node:fs'
import { ConfigError } from '../common/errors.js'
import { loadRedisTls, type RedisTls, type RedisTlsSettings } from './redis.js'

export interface RenewalLog {
  info(object: unknown, message: string): void
  warn(object: unknown, message: string): void
}

/**
 * Keeps `tls` (what loadRedisTls read from `settings` at start-up) up to date with its files,
 * checking them every `intervalSeconds`. Returns what stops the checks.
 */
export function renewRedisTls(tls: RedisTls, settings: RedisTlsSettings, intervalSeconds: number, log: RenewalLog): () => void {
  // A certificate and its key may share one file: it is watched once.
  const files = [...new Set([settings.caFile, settings.clientCertificate?.certFile, settings.clientCertificate?.keyFile].filter((file) => file !== undefined))]
  let reading: Promise<void> | undefined
  let again = false

  const reload = async (): Promise<void> => {
    let renewed: RedisTls | undefined
    try {
      renewed = await loadRedisTls(settings)
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      log.warn({ problems: error.problems }, 'Redis TLS files changed but cannot be used (yet); new Redis connections keep the previous ones')
      return
    }
    if (renewed === undefined || (renewed.ca === tls.ca && renewed.cert === tls.cert && renewed.key === tls.key)) return
    Object.assign(tls, renewed)
    log.info({ files }, 'Redis TLS files renewed; new Redis connections use them')
  }

  // One read at a time; a change seen meanwhile is read once that one is done.
  const check = (): void => {
    if (reading) {
      again = true
      return
    }
    reading = reload()
      .catch((error: unknown) => log.warn({ err: { message: (error as Error).message } }, 'Redis TLS files could not be read again'))
      .finally(() => {
        reading = undefined
        if (again) {
          again = false
          check()
        }
      })
  }
  const changed = (now: Stats, before: Stats): void => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.size !== before.size) check()
  }

  for (const file of files) watchFile(file, { interval: intervalSeconds * 1000, persistent: false }, changed)
  return () => {
    for (const file of files) unwatchFile(file, changed)
  }
}
