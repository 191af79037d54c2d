// A test file whose tests all passed can still fail: tap times it out when something (a socket,
// a timer, a child process) keeps its process alive afterwards. That happened once in CI after
// the Cluster rebalance test and never here; this makes the next occurrence name what it was.

import { ChildProcess } from 'node:child_process'
import { Server, Socket } from 'node:net'
import type { Test } from 'tap'

/**
 * Once the file's tests are done: if the process is still alive `afterMs` later, prints what
 * holds it open (to stderr, so it lands in the CI log). The timer itself holds nothing.
 */
export function reportWhatHoldsTheProcess(t: Test, afterMs = 15_000): void {
  t.teardown(() => {
    setTimeout(() => {
      const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()
      const resources = process.getActiveResourcesInfo().filter((name) => name !== 'TTYWrap')
      console.error(`# still alive ${afterMs} ms after the tests ended; resources: ${resources.join(', ')}; handles:\n${handles.map(describe).join('\n')}`)
    }, afterMs).unref()
  })
}

function describe(handle: unknown): string {
  if (handle instanceof Socket) {
    return handle.remotePort === undefined ? '#   a pipe (stdio or IPC)' : `#   a socket to ${handle.remoteAddress}:${handle.remotePort} from port ${handle.localPort}`
  }
  if (handle instanceof Server) return `#   a server on ${JSON.stringify(handle.address())}`
  if (handle instanceof ChildProcess) return `#   child process ${handle.pid}: ${handle.spawnargs.slice(0, 4).join(' ')}`
  return `#   ${(handle as object)?.constructor?.name ?? typeof handle}`
}
