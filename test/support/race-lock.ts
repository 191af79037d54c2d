// A contender for the data folder lock's race test: says "ready", takes the lock at the
// first line on stdin, says "won" or "refused", and holds what it won until stdin ends.

import { lockDataDir } from '../../src/storage/data-dir-lock.js'

const [file] = process.argv.slice(2)
process.stdin.resume()
process.stdout.write('ready\n')
await new Promise((resolve) => process.stdin.once('data', resolve))
try {
  const lock = await lockDataDir(file!, 'the test folder')
  process.stdout.write('won\n')
  await new Promise((resolve) => process.stdin.once('end', resolve))
  await lock.release()
} catch {
  process.stdout.write('refused\n')
}
