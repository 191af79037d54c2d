// Audit rows are written with plain SQL (every login waits on the insert): their time must
// still be UTC, as Prisma writes and reads the TIMESTAMP(3) column, whatever the process's
// time zone. Run in Seoul's zone (UTC+9), where a local time would be nine hours off.

process.env.TZ = 'Asia/Seoul'

import t from 'tap'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'
for (const database of ['pglite', 'postgresql'] as const) {
  t.test(`${database}: a login's session.started row carries the time of the login`, async (t) => {
    const gateway = await startTestGateway({ database })
    t.teardown(() => gateway.close())
    const before = Date.now()
    const login = await loginWithGoogle(gateway, { sub: `audit-time-${database}`, name: 'Tim' })
    t.equal(login.statusCode, 200)
    const row = await gateway.database.prisma.auditEvent.findFirst({ where: { action: 'session.started' }, orderBy: { id: 'desc' } })
    const offsetSeconds = Math.round((row!.at.getTime() - before) / 1000)
    t.ok(offsetSeconds >= -1 && offsetSeconds <= 5, `written at the login, not hours off (${offsetSeconds} s)`)
  })
}
