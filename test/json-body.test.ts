// The strict JSON body rule (src/http/json-body.ts) on its own: which texts JSON.parse
// accepts but the gateway refuses. End to end it is in test/bad-input.test.ts.

import t from 'tap'
import { strictnessProblem } from '../src/http/json-body.js'

t.test('a key repeated in one object is found, however it is spelled or nested', async (t) => {
  const repeated = [
    '{"a":1,"a":2}',
    '{"a":1,"a":1}',
    '{"a":"x","b":0,"a":"x"}',
    '{"a":1,"\\u0061":2}',
    '{"\\"":1,"\\u0022":2}',
    '{"x":{"a":1,"a":2}}',
    '[{"a":1},{"b":{"c":[{"d":1,"d":1}]}}]',
    '{"a":{},"a":[]}',
    '{"a":[1,{"b":2}],"a":null}',
    ' { "a" : 1 , "a" : 2 } ',
  ]
  for (const json of repeated) {
    JSON.parse(json) // each is valid JSON
    t.match(strictnessProblem(json), /more than once/, json)
  }
})

t.test('distinct keys, and the same key in different objects, pass', async (t) => {
  const fine = [
    '{}',
    '[]',
    '"a"',
    '1',
    '{"a":1,"b":2}',
    '[{"a":1},{"a":1}]',
    '{"a":{"a":{"a":1}}}',
    '{"a":{"b":1},"b":{"a":1}}',
    '{"a":"a","b":"a"}',
    '{"a":["a","a"]}',
    '{"a":"{\\"a\\":1,\\"a\\":2}"}',
    '{"a\\\\":1,"a":2}',
    '{"a":"\\\\","b":"x"}',
    '{"a":1,"A":2}',
    '{"caf\\u00e9":1,"cafe\\u0301":2}',
    '[' + '{"k":1},'.repeat(500) + '{"k":1}]',
  ]
  for (const json of fine) {
    JSON.parse(json)
    t.equal(strictnessProblem(json), undefined, json)
  }
})

t.test('U+0000 is found in keys and values, and only when it is one', async (t) => {
  for (const json of ['{"a":"\\u0000"}', '{"a":"x\\u0000y"}', '{"\\u0000":1}', '["\\u0000"]', '"\\u0000"', '{"a":{"b":["\\u0000"]}}']) {
    t.match(strictnessProblem(json), /U\+0000/, json)
  }
  // An escaped backslash followed by the text u0000 is not U+0000.
  for (const json of ['{"a":"\\\\u0000"}', '{"a":"u0000"}', '{"a":"\\u0001"}']) {
    t.equal(strictnessProblem(json), undefined, json)
  }
})

t.test('a lone surrogate escape is found in keys and values; a pair is text', async (t) => {
  for (const json of ['{"a":"\\ud800"}', '{"a":"x\\udc00"}', '{"a":"\\udfff\\ud800"}', '{"\\udbff":1}', '["\\ud800x"]', '"\\udc00"']) {
    JSON.parse(json)
    t.match(strictnessProblem(json), /well-formed Unicode/, json)
  }
  // A pair (an emoji), an escaped backslash before the text ud800, and the character itself.
  for (const json of ['{"a":"\\ud83d\\ude00"}', '{"a":"\\\\ud800"}', '{"a":"😀"}', '{"a":"\\u00e9"}']) {
    t.equal(strictnessProblem(json), undefined, json)
  }
})
