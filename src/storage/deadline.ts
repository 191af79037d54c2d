// A deadline for everything one unit of work (an HTTP request) asks of storage: however
// many Redis calls a request makes, it gets its 503 once the deadline has passed, not
// after one command timeout per call. Carried by AsyncLocalStorage so storage code needs
// no request object.

import { AsyncLocalStorage } from 'node:async_hooks'

const deadlines = new AsyncLocalStorage<number>()

/** Runs `work` (and everything it starts) with `budgetMs` of storage time in total. */
export function withDeadline<T>(budgetMs: number, work: () => T): T {
  return deadlines.run(Date.now() + budgetMs, work)
}

/** Milliseconds left before the current deadline; undefined outside any. */
export function timeLeft(): number | undefined {
  const deadline = deadlines.getStore()
  return deadline === undefined ? undefined : deadline - Date.now()
}
