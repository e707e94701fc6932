#!/usr/bin/env node
// The package's install (and build) script: builds the native addon
// `vodtask.node` and its type declarations `native.d.ts` with the napi-rs
// CLI (a dev dependency) from the Cargo workspace this folder lives in.
//
// `npm install ./bindings/node` links this folder into the app's
// node_modules and runs this script here, in the repository. An npm tarball
// cannot carry the Cargo workspace: a package packed with `npm pack` must
// already contain a built `vodtask.node`, which is then used as it is.
//
// Cargo profile: `dist` by default (the workspace's release code,
// stripped: 14 MB instead of the ~100 MB of `release`, which keeps debug
// info for perf). VODTASK_NODE_PROFILE=debug builds the dev profile (the
// repository's tests do, to keep CI short); any other value is a profile
// name, e.g. `release` for an addon perf can symbolize.
//
// A cold build takes minutes and npm hides an install script's output:
// `npm install --foreground-scripts` shows cargo's progress.
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const pkgDir = path.resolve(__dirname, '..')
const workspace = path.resolve(pkgDir, '..', '..')
const addon = path.join(pkgDir, 'vodtask.node')

function run(cmd, args, env) {
  console.error(`vodtask: ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: pkgDir, stdio: 'inherit', env })
  if (r.error) throw r.error
  if (r.status !== 0) {
    console.error(`vodtask: ${cmd} failed (exit ${r.status})`)
    process.exit(r.status || 1)
  }
}

// npm hides an install script's output unless --foreground-scripts: a line
// straight to the terminal, when there is one, says why the install waits.
function notice(line) {
  console.error(line)
  if (process.stderr.isTTY) return
  try {
    fs.writeFileSync('/dev/tty', line + '\n')
  } catch {
    // No terminal (CI, a service): npm's log keeps the line.
  }
}

if (!fs.existsSync(path.join(workspace, 'Cargo.toml')) || !fs.existsSync(path.join(pkgDir, 'Cargo.toml'))) {
  if (fs.existsSync(addon)) process.exit(0) // a packed package with its addon
  console.error(
    'vodtask: no prebuilt vodtask.node and no Cargo workspace around ' + pkgDir + '.\n' +
    'Install from a checkout of the vodtask repository: npm install <repo>/bindings/node',
  )
  process.exit(1)
}

// The outer npm's settings (global, prefix, production...) must not steer
// the nested install of the dev dependencies.
const env = {}
for (const [k, v] of Object.entries(process.env)) {
  if (!k.toLowerCase().startsWith('npm_') || /^npm_config_(cache|registry|userconfig)$/i.test(k)) env[k] = v
}

const napiBin = path.join(pkgDir, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const devDeps = Object.keys(require(path.join(pkgDir, 'package.json')).devDependencies || {})
if (devDeps.some((d) => !fs.existsSync(path.join(pkgDir, 'node_modules', d, 'package.json')))) {
  // A linked folder's dev dependencies are not installed by the app's npm
  // (the napi-rs CLI builds; typescript and @types/node check the types).
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  run(npm, ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--include=dev'], env)
}

const args = [napiBin, 'build', '--manifest-path', 'Cargo.toml', '--output-dir', '.', '--dts', 'native.d.ts']
const profile = process.env.VODTASK_NODE_PROFILE || 'dist'
if (profile !== 'debug') args.push('--profile', profile)
notice(
  `vodtask: building the native addon with cargo (profile ${profile === 'debug' ? 'dev' : profile}); ` +
    'the first build takes minutes' +
    (process.stderr.isTTY ? '' : ' (npm install --foreground-scripts shows its progress)'),
)
run(process.execPath, args, env)
