// Test harness: the package under test, a real `vodtask serve` on its own
// data dir and free ports, clips made with ffmpeg, and deadlines.
import { spawn, execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkgDir = path.resolve(here, '..')
const repo = path.resolve(pkgDir, '..', '..')

// The package as an app gets it: `vodtask` from the node_modules of the
// current directory when it has one (scripts/test.sh installs it into a
// temporary project and runs these tests there), else this folder.
function loadPackage() {
  const appRequire = createRequire(path.join(process.cwd(), 'package.json'))
  try {
    return appRequire('vodtask')
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e
    return createRequire(import.meta.url)(pkgDir)
  }
}
export const vodtask = loadPackage()
/** The folder of the package under test. */
export const packageDir = path.dirname(
  fs.realpathSync(createRequire(path.join(process.cwd(), 'package.json')).resolve('vodtask', { paths: [process.cwd(), pkgDir] })),
)
export const repoDir = repo

/** How long any one condition may take. */
export const DEADLINE_MS = 60_000

export function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vodtask-node-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A `seconds` long H.264/AAC test clip, like tests/src/lib.rs make_clip. */
export function makeClip(dir, name = 'in.mp4', seconds = 2, width = 320, height = 240) {
  const out = path.join(dir, name)
  execFileSync('ffmpeg', [
    '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc=duration=${seconds}:size=${width}x${height}:rate=25`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-shortest', out,
  ])
  return out
}

/** Rejects with `what` when `promise` has not settled within `ms`. */
export async function within(promise, what, ms = DEADLINE_MS) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls `fn` until it returns a truthy value, failing after the deadline. */
export async function eventually(what, fn, ms = DEADLINE_MS) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

function vodtaskBin() {
  const bin = process.env.VODTASK_BIN || path.join(repo, 'target', 'debug', 'vodtask')
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run cargo build --workspace first`)
  return bin
}

/** Starts `vodtask serve` on `dataDir` with free ports; stopped after the test. */
export async function startServer(t, dataDir, extra = []) {
  const log = fs.openSync(`${dataDir}.log`, 'a')
  const child = spawn(
    vodtaskBin(),
    ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', ...extra],
    { stdio: ['ignore', 'pipe', log], env: { ...process.env, RUST_LOG: 'info' } },
  )
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.after(async () => {
    child.kill('SIGKILL')
    await exited
    fs.closeSync(log)
  })
  const lines = readline.createInterface({ input: child.stdout })
  const line = await within(
    new Promise((resolve, reject) => {
      lines.once('line', resolve)
      child.once('exit', (code) => reject(new Error(`vodtask exited (${code}); see ${dataDir}.log`)))
    }),
    'vodtask printed its addresses',
  )
  lines.close()
  const field = (name) => {
    const m = new RegExp(`${name}=(\\S+)`).exec(line)
    if (!m) throw new Error(`no ${name} in ${JSON.stringify(line)}`)
    return m[1]
  }
  return {
    grpc: `http://${field('grpc')}`,
    http: field('http'),
    key: fs.readFileSync(path.join(dataDir, 'default.key'), 'utf8').trim(),
  }
}
