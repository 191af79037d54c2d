// Caps on open connections, so that no client can hold the service by opening many of them:
// each TCP peer address may hold at most `perAddress` at a time (one more is destroyed as
// soon as it is accepted, before any byte is parsed), and all of them together stay below
// the process's file-descriptor limit, so Redis, the database and provider calls always
// find a descriptor. The peer is the TCP peer: behind a proxy that is the proxy (size the
// cap for it); X-Forwarded-For is not believed here, whatever TRUST_PROXY says.

import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'

export interface ConnectionLimitSettings {
  /** Concurrent connections one peer address may hold. */
  perAddress: number
}

/** Descriptors kept free for everything that is not a client connection (stores, providers, files). */
const RESERVED_DESCRIPTORS = 128
/** Where the limit cannot be read (not Linux): the usual default soft limit. */
const FALLBACK_DESCRIPTOR_LIMIT = 1024

export function applyConnectionLimits(server: Server, settings: ConnectionLimitSettings): void {
  server.maxConnections = connectionBudget(fileDescriptorLimit())
  const open = new Map<string, number>()
  server.on('connection', (socket) => {
    const address = socket.remoteAddress
    // No address: the peer is already gone.
    if (address === undefined) return void socket.destroy()
    const count = (open.get(address) ?? 0) + 1
    if (count > settings.perAddress) return void socket.destroy()
    open.set(address, count)
    socket.once('close', () => {
      const left = open.get(address)! - 1
      if (left === 0) open.delete(address)
      else open.set(address, left)
    })
  })
}

/** Client connections allowed in all: the limit minus a reserve, never less than half of it. */
export function connectionBudget(descriptorLimit: number): number {
  return Math.max(Math.floor(descriptorLimit / 2), descriptorLimit - RESERVED_DESCRIPTORS)
}

/** The process's soft limit on open files (Node raises it to the hard limit at start-up). */
export function fileDescriptorLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\S+)/m)
    if (line?.[1] === 'unlimited') return Number.MAX_SAFE_INTEGER
    const limit = Number(line?.[1])
    return Number.isInteger(limit) && limit > 0 ? limit : FALLBACK_DESCRIPTOR_LIMIT
  } catch {
    return FALLBACK_DESCRIPTOR_LIMIT
  }
}
