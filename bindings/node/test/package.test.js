'use strict'
// The package itself: one version with the workspace, generated files up to date,
// and type declarations that match the code.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const ballot = require('..')

const PKG = path.join(__dirname, '..')
const ROOT = path.join(PKG, '..', '..')

function workspaceVersion() {
  const toml = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8')
  const section = toml.split(/^\[workspace\.package\]$/m)[1]
  assert.ok(section, 'Cargo.toml has a [workspace.package] section')
  const m = /^version\s*=\s*"([^"]+)"/m.exec(section)
  assert.ok(m, 'the workspace has a version')
  return m[1]
}

describe('package', () => {
  it('has the workspace version everywhere', () => {
    const want = workspaceVersion()
    const pkg = JSON.parse(fs.readFileSync(path.join(PKG, 'package.json'), 'utf8'))
    const lock = JSON.parse(fs.readFileSync(path.join(PKG, 'package-lock.json'), 'utf8'))
    assert.equal(pkg.version, want, 'package.json')
    assert.equal(lock.version, want, 'package-lock.json')
    assert.equal(lock.packages[''].version, want, 'package-lock.json packages[""]')
    assert.equal(ballot.version, want, 'the native addon')
  })

  it('native.js and native.d.ts are what the napi CLI generates now', { timeout: 600000 }, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ballot-node-gen-'))
    try {
      const cli = path.join(PKG, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
      // The same flags as `npm run build`, into a scratch directory.
      const r = spawnSync(
        process.execPath,
        [cli, 'build', '--platform', '--release', '--js', 'native.js', '--dts', 'native.d.ts', '--output-dir', out],
        { cwd: PKG, encoding: 'utf8' },
      )
      assert.equal(r.status, 0, `napi build failed:\n${r.stdout}\n${r.stderr}`)
      for (const f of ['native.js', 'native.d.ts']) {
        const committed = fs.readFileSync(path.join(PKG, f), 'utf8')
        const fresh = fs.readFileSync(path.join(out, f), 'utf8')
        assert.ok(committed === fresh, `${f} is stale: run \`npm run build\` in bindings/node and commit it`)
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true })
    }
  })

  it('index.d.ts type-checks against a typed use of the API', { timeout: 120000 }, () => {
    const tsc = require.resolve('typescript/bin/tsc')
    const r = spawnSync(
      process.execPath,
      [
        tsc,
        '--noEmit',
        '--strict',
        '--target',
        'es2022',
        '--module',
        'commonjs',
        '--moduleResolution',
        'node10',
        '--types',
        'node',
        path.join(__dirname, 'types', 'usage.ts'),
      ],
      { cwd: PKG, encoding: 'utf8' },
    )
    assert.equal(r.status, 0, `tsc failed:\n${r.stdout}\n${r.stderr}`)
  })

  it('index.d.ts declares every export and every error code', () => {
    const dts = fs.readFileSync(path.join(PKG, 'index.d.ts'), 'utf8')
    for (const name of Object.keys(ballot)) {
      const re = new RegExp(`export declare (const|function|class) ${name}\\b`)
      assert.match(dts, re, `index.d.ts does not declare ${name}`)
    }
    const union = /export type ErrorCode =([^]*?)\n\n/.exec(dts)
    assert.ok(union, 'index.d.ts has an ErrorCode union')
    const declared = [...union[1].matchAll(/'([A-Z_]+)'/g)].map((m) => m[1])
    assert.deepEqual(declared, [...ballot.ERROR_CODES])
    assert.ok(ballot.ERROR_CODES.includes('BALLOT_NOT_LEADER'))
    assert.ok(ballot.ERROR_CODES.includes('BALLOT_CANCELLED'))
    assert.equal(ballot.ERROR_CODES.length, 12)
  })
})
