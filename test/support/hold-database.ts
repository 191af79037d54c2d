// A second process for the data folder lock's tests: opens the embedded database under the
// DATA_DIR given as its argument, says "open" on stdout, and holds it until stdin ends.
// Then it closes the database, or with `--exit` leaves through process.exit without closing.

import { openDatabase } from '../../src/storage/database.js'

const [dataDir, mode] = process.argv.slice(2)
try {
  const database = await openDatabase({ dataDir: dataDir! })
  process.stdout.write('open\n')
  process.stdin.resume()
  await new Promise((resolve) => process.stdin.once('end', resolve))
  if (mode === '--exit') process.exit(0)
  await database.close()
} catch (error) {
  process.stdout.write(`refused: ${(error as Error).message}\n`)
  process.exitCode = 3
}
