import t from 'tap'
import { randomId } from '../src/common/secrets.js'

// User ids and client ids are typed on operators' command lines (`npm run admin -- role:assign <id> …`),
// where one starting with "-" reads as an option. One in 32 base64url strings starts with "-" or "_".
t.test('ids are 22 base64url characters, all distinct, none starting with - or _', async (t) => {
  const ids = Array.from({ length: 5000 }, () => randomId())
  t.equal(ids.filter((id) => !/^[A-Za-z0-9][A-Za-z0-9_-]{21}$/.test(id)).length, 0, 'every id is a letter or digit, then 21 base64url characters')
  t.equal(new Set(ids).size, ids.length, 'no id repeats')
})
