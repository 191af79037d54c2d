// One storage budget for everything a unit of work (an HTTP request) asks of Redis: however
// many calls a request makes, together they may wait STORAGE_BUDGET_MS, and then the
// request gets its 503 — not one command timeout per call. Only time spent waiting on
// storage counts, so a slow provider exchange in the same request does not use it up.
// Carried by AsyncLocalStorage so storage code needs no request object.

import { AsyncLocalStorage } from 'node:async_hooks'

interface Budget {
  leftMs: number
}

const budgets = new AsyncLocalStorage<Budget>()

/** Runs `work` (and everything it starts) with `budgetMs` of storage waiting in total. */
export function withStorageBudget<T>(budgetMs: number, work: () => T): T {
  return budgets.run({ leftMs: budgetMs }, work)
}

export class BudgetExhausted extends Error {
  constructor(budget: number) {
    super(`storage did not answer within the request's remaining ${budget} ms`)
    this.name = 'BudgetExhausted'
  }
}

/** Runs one storage call against the current budget (unbounded outside any); rejects with BudgetExhausted when it runs out. */
export async function withinBudget<T>(operation: () => Promise<T>): Promise<T> {
  const budget = budgets.getStore()
  if (!budget) return operation()
  if (budget.leftMs <= 0) throw new BudgetExhausted(0)
  const started = Date.now()
  const left = budget.leftMs
  let timer: NodeJS.Timeout | undefined
  const exhausted = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BudgetExhausted(left)), left)
  })
  try {
    return await Promise.race([operation(), exhausted])
  } finally {
    clearTimeout(timer)
    budget.leftMs -= Date.now() - started
  }
}

/** What an undo step may wait on storage, on top of the spent request's budget. */
const UNDO_BUDGET_MS = 1_500

/**
 * Starts an undo step (putting back a claimed ticket, freeing a reserved credential) after
 * a failure that may have used up the request's budget: it gets a budget of its own, and
 * the failed request's answer does not wait for it. Its first command is issued before
 * this returns, so on the same connection a client's retry reaches storage after it.
 */
export function undoInBackground(undo: () => Promise<unknown>): void {
  budgets.run({ leftMs: UNDO_BUDGET_MS }, () => {
    undo().catch(() => {})
  })
}
