// A start-up look at how many replicas hold each master's writes, against REDIS_WAIT_REPLICAS.
// Both mistakes cost users, and neither shows until it is too late: more than a master has
// answers every session change there with 503; fewer than a Sentinel group's replicas lets a
// failover or a planned switch erase session changes the master had answered, logging users
// out (docs/operations.md has the measurements). Warnings, not refusals: a replica that is
// down while the gateway starts may be back a minute later.

import { mastersOf, type RedisClient } from './redis.js'

/** What the operator should hear: one line per master whose replicas do not match the setting. */
export async function replicaWarnings(redis: RedisClient, waitReplicas: number, sentinelGroup: boolean): Promise<string[]> {
  const warnings: string[] = []
  for (const { master, address } of mastersOf(redis)) {
    const online = onlineReplicas(await master.info('replication'))
    const where = address ? ` ${address}` : ''
    if (waitReplicas > online) {
      warnings.push(
        `REDIS_WAIT_REPLICAS is ${waitReplicas}, but the master${where} has ${online} replica(s) online: every login, refresh and logout of its sessions answers 503 until ${waitReplicas} are`,
      )
    } else if (sentinelGroup && waitReplicas < online) {
      warnings.push(
        `REDIS_WAIT_REPLICAS is ${waitReplicas}, but the master has ${online} replica(s) online: a failover or a planned switch (SENTINEL FAILOVER) can erase session changes held by fewer replicas, logging users out; set REDIS_WAIT_REPLICAS=${online}`,
      )
    }
  }
  return warnings
}

/** INFO replication lists each replica as `slaveN:ip=…,port=…,state=online,…`. */
function onlineReplicas(info: string): number {
  return info.split('\n').filter((line) => /^slave\d+:.*\bstate=online\b/.test(line)).length
}
