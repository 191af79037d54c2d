// Each request gets one storage budget for all its Redis calls together, so a stalled
// Redis answers every request with 503 within STORAGE_BUDGET_MS however many calls it makes.

import type { FastifyInstance } from 'fastify'
import { withStorageBudget } from '../storage/storage-budget.js'

export const STORAGE_BUDGET_MS = 2000

export function registerStorageBudget(app: FastifyInstance, budgetMs = STORAGE_BUDGET_MS): void {
  // Entered at onRequest, the budget covers every later hook and the handler (the
  // pattern @fastify/request-context uses for AsyncLocalStorage).
  app.addHook('onRequest', (_request, _reply, done) => withStorageBudget(budgetMs, done))
}
