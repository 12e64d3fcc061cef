'use strict'
// The README's Node example, run as a new user would: the package packed with
// `npm pack`, installed into a fresh folder, and the example's output compared with
// the output the README shows. Only the example's state directory is moved into a
// fresh temporary folder, so that its terms start at 1 as the README says.

const { it } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const PKG = path.join(__dirname, '..')
const README = path.join(PKG, '..', '..', 'README.md')
const STATE = '/tmp/ballot-node-example/state'

function nodeSection() {
  const text = fs.readFileSync(README, 'utf8')
  const start = text.indexOf('\n## Node\n')
  assert.ok(start >= 0, 'README.md has a Node section')
  const end = text.indexOf('\n## ', start + 1)
  const section = text.slice(start, end)
  const blocks = [...section.matchAll(/```(\w*)\n([^]*?)```/g)].map((m) => ({ lang: m[1], body: m[2] }))
  const js = blocks.filter((b) => b.lang === 'js')
  const out = blocks.filter((b) => b.lang === '')
  assert.equal(js.length, 1, 'one js example')
  assert.equal(out.length, 1, 'one output block')
  return { example: js[0].body, output: out[0].body }
}

it('the README example runs as written from an npm pack tarball in a fresh folder', { timeout: 180000 }, () => {
  const { example, output } = nodeSection()
  assert.ok(example.includes(STATE), `the example keeps its state in ${STATE}`)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ballot-node-readme-'))
  try {
    const npm = (args, cwd) => execFileSync('npm', [...args, '--no-audit', '--no-fund'], { cwd, encoding: 'utf8' })
    const tarball = npm(['pack', '--silent', '--pack-destination', tmp], PKG).trim().split('\n').pop()
    const app = path.join(tmp, 'app')
    fs.mkdirSync(app)
    npm(['init', '-y'], app)
    npm(['install', path.join(tmp, tarball)], app)
    fs.writeFileSync(path.join(app, 'example.js'), example.replaceAll(STATE, path.join(tmp, 'state')))
    const stdout = execFileSync(process.execPath, ['example.js'], { cwd: app, encoding: 'utf8', timeout: 60000 })
    assert.equal(stdout, output)
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
})
