// The repository stands on its own: no file refers to documents outside it (a sibling
// folder of facts, a path on a developer's machine), and every relative link in its
// Markdown resolves to a file inside it. A newcomer with only a clone can follow every link.

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** The files a clone holds (tracked, and new ones not ignored), binary files aside. */
function repositoryTextFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
  return listed
    .split('\n')
    .filter((file) => file !== '' && existsSync(join(ROOT, file)))
    .filter((file) => !/\.(png|jpe?g|gif|ico|woff2?|lock)$/.test(file) && file !== 'package-lock.json')
}

/** Mentions of places outside the repository: the facts folder beside it, or an absolute machine path. */
const OUTSIDE = [/\.\.\/shared\b/, /\/work\/(main|shared)\b/, /\bshared\/(CONTRACT|PROVIDERS|SECURITY|STYLE|TOOLCHAIN)\.md\b/]

t.test('no file refers to documents outside the repository', async (t) => {
  const offenders: string[] = []
  for (const file of repositoryTextFiles()) {
    if (file === 'test/self-contained.test.ts') continue
    const lines = readFileSync(join(ROOT, file), 'utf8').split('\n')
    lines.forEach((line, index) => {
      if (OUTSIDE.some((pattern) => pattern.test(line))) offenders.push(`${file}:${index + 1}: ${line.trim().slice(0, 120)}`)
    })
  }
  t.same(offenders, [], offenders.join('\n'))
})

t.test('every relative link in the Markdown files resolves inside the repository', async (t) => {
  const broken: string[] = []
  for (const file of repositoryTextFiles().filter((name) => name.endsWith('.md'))) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(https?:|mailto:|#)/.test(target!)) continue
      const path = resolve(ROOT, dirname(file), decodeURI(target!.split('#')[0]!))
      const inside = !relative(ROOT, path).startsWith('..')
      if (!inside || !existsSync(path)) broken.push(`${file}: ${target}${inside ? ' (missing)' : ' (outside the repository)'}`)
    }
  }
  t.same(broken, [], broken.join('\n'))
})
