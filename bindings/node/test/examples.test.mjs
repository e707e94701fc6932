// The examples the README shows (examples/node/*.mjs) run as written, in a
// project that has the package installed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { packageDir, repoDir, tempDir, startServer, DEADLINE_MS } from './helpers.mjs'

const run = promisify(execFile)

function project(t, example) {
  const dir = tempDir(t)
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(packageDir, path.join(dir, 'node_modules', 'vodtask'))
  fs.copyFileSync(path.join(repoDir, 'examples', 'node', example), path.join(dir, example))
  return dir
}

test('the quickstart runs as written (embedded)', async (t) => {
  const dir = project(t, 'quickstart.mjs')
  const { stdout } = await run(process.execPath, ['quickstart.mjs'], { cwd: dir, timeout: DEADLINE_MS })
  assert.match(stdout, /^uploaded \d{20} 640x360 /m)
  assert.match(stdout, /^event NewFileUpload /m)
  assert.match(stdout, /^event TranscodeComplete /m)
  assert.match(stdout, /^task FINISH errCode 0 url http:\/\/127\.0\.0\.1:\d+\/\S+\.mp4$/m)
  assert.match(stdout, /^error INVALID_ARGUMENT spec\.transcode\.definitions\[0\]/m)
})

test('the webhook example receives a real callback and verifies it', async (t) => {
  const dir = project(t, 'webhook.mjs')
  const server = await startServer(t, path.join(dir, 'data'), ['--allow-outbound-cidr', '127.0.0.1/32'])
  const { stdout } = await run(process.execPath, ['webhook.mjs'], {
    cwd: dir,
    timeout: DEADLINE_MS,
    env: { ...process.env, VODTASK_URL: server.grpc, VODTASK_KEY: server.key },
  })
  assert.match(stdout, /^verified NewFileUpload \S+ fileId \d{20}$/m)
})
