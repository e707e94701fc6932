// The examples the README shows (examples/node/*.mjs) run as written, in a
// project that has the package installed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { promisify } from 'node:util'
import { packageDir, repoDir, tempDir, startServer, within, vodtask, DEADLINE_MS } from './helpers.mjs'

const run = promisify(execFile)

function project(t, example) {
  const dir = tempDir(t)
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(packageDir, path.join(dir, 'node_modules', 'vodtask'))
  fs.copyFileSync(path.join(repoDir, 'examples', 'node', example), path.join(dir, example))
  return dir
}

function checkQuickstart(stdout) {
  assert.match(stdout, /^uploaded \d{20} 640x360 /m)
  assert.match(stdout, /^state PROCESSING \d+$/m)
  assert.match(stdout, /^state FINISH 100$/m)
  assert.match(stdout, /^task FINISH errCode 0 url http:\/\/127\.0\.0\.1:\d+\/\S+\.mp4$/m)
  assert.match(stdout, /^error INVALID_ARGUMENT spec\.transcode\.definitions\[0\]/m)
}

test('the quickstart runs as written (embedded)', async (t) => {
  const dir = project(t, 'quickstart.mjs')
  const { stdout } = await run(process.execPath, ['quickstart.mjs'], { cwd: dir, timeout: DEADLINE_MS })
  checkQuickstart(stdout)
})

test('three copies of the quickstart run at once against one server', async (t) => {
  const dir = project(t, 'quickstart.mjs')
  const server = await startServer(t, path.join(dir, 'data'))
  const env = { ...process.env, VODTASK_URL: server.grpc, VODTASK_API_KEY: server.key }
  const copies = [1, 2, 3].map(() =>
    run(process.execPath, ['quickstart.mjs'], { cwd: dir, env, timeout: 2 * DEADLINE_MS }))
  for (const { stdout } of await Promise.all(copies)) checkQuickstart(stdout)
})

test('the webhook example receives a real callback and verifies it', async (t) => {
  const dir = project(t, 'webhook.mjs')
  const server = await startServer(t, path.join(dir, 'data'), ['--allow-outbound-cidr', '127.0.0.1/32'])
  const { stdout } = await run(process.execPath, ['webhook.mjs'], {
    cwd: dir,
    timeout: DEADLINE_MS,
    env: { ...process.env, VODTASK_URL: server.grpc, VODTASK_API_KEY: server.key },
  })
  assert.match(stdout, /^verified NewFileUpload \S+ fileId \d{20}$/m)
})

test('the webhook example fails fast when the server may not call it', async (t) => {
  const dir = project(t, 'webhook.mjs')
  const server = await startServer(t, path.join(dir, 'data'), [])
  const failed = await run(process.execPath, ['webhook.mjs'], {
    cwd: dir,
    timeout: DEADLINE_MS,
    env: { ...process.env, VODTASK_URL: server.grpc, VODTASK_API_KEY: server.key },
  }).then(
    () => assert.fail('the example should have failed'),
    (e) => e,
  )
  assert.match(failed.stderr, /^error FAILED_PRECONDITION notification_url: the outbound address policy refuses .*--allow-outbound-cidr/m)
})

// The environment without a server: the example app then runs the engine in
// its own process.
const { VODTASK_URL: _url, VODTASK_API_KEY: _key, ...embeddedEnv } = process.env

// The example app as a process of its own, to be killed: `node
// transcode-app.mjs STATE_DIR --slow 5`, so that each side effect is followed
// by 5 s in which the event is not yet acked. Its stdout is read line by line
// while it runs; every failure shows its output.
function startApp(t, dir, stateDir, env) {
  const child = spawn(process.execPath, ['transcode-app.mjs', stateDir, '--slow', '5'], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines = []
  let stderr = ''
  let ended = false
  let wake = () => {}
  child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s))
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line)
    wake()
  })
  // 'close' rather than 'exit': it comes after the last line of stdout.
  const closed = new Promise((resolve) =>
    child.once('close', (code, signal) => {
      ended = true
      wake()
      resolve({ code, signal })
    }),
  )
  t.after(() => {
    child.kill('SIGKILL')
    return closed
  })
  const fail = (what) => new Error(`${what}\n--- stdout:\n${lines.join('\n')}\n--- stderr:\n${stderr}`)
  const settled = (what) => within(closed, what).catch((e) => Promise.reject(fail(e.message)))
  return {
    lines,
    fail,
    /** The match of the first line, printed so far or to come, that matches `re`. */
    async waitFor(re) {
      const end = Date.now() + DEADLINE_MS
      for (;;) {
        const m = lines.map((l) => re.exec(l)).find(Boolean)
        if (m) return m
        if (ended) throw fail(`the app ended before printing a line matching ${re}`)
        const left = end - Date.now()
        if (left <= 0) throw fail(`timed out after ${DEADLINE_MS} ms waiting for a line matching ${re}`)
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left)
          wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
    },
    kill() {
      child.kill('SIGKILL')
      return settled('the killed app ended')
    },
    /** Resolves to { code, signal } once the app has ended on its own. */
    exited: () => settled('the app ended on its own'),
  }
}

// The app's ledger. A line torn by a kill is cut off by the next run, so
// every line must parse.
function readLedger(stateDir) {
  const text = fs.readFileSync(path.join(stateDir, 'ledger.jsonl'), 'utf8')
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line))
}

/** Each event of `expected` ({eventId: eventType}) had its side effect exactly once, and no other event had one. */
function assertEffectsOnce(ledger, expected) {
  const effects = ledger.filter((r) => r.kind === 'effect')
  const ids = effects.map((r) => r.eventId)
  assert.equal(new Set(ids).size, ids.length, `an effect twice: ${JSON.stringify(ids)}`)
  assert.deepEqual(effects.map((r) => [r.eventId, r.eventType]).sort(), Object.entries(expected).sort())
}

function deliveries(ledger, eventId) {
  return ledger.filter((r) => r.kind === 'delivery' && r.eventId === eventId).length
}

async function assertQueueEmpty(client) {
  const { ready, inFlight, delayed, deadLettered } = await client.eventsState()
  assert.deepEqual({ ready, inFlight, delayed, deadLettered }, { ready: 0, inFlight: 0, delayed: 0, deadLettered: 0 })
}

test('the example app handles every event once across kill -9 (embedded)', async (t) => {
  const dir = project(t, 'transcode-app.mjs')
  const state = path.join(dir, 'state')

  // Run 1 is killed after the NewFileUpload's side effect, before its ack.
  const run1 = startApp(t, dir, state, embeddedEnv)
  const [, taskId] = await run1.waitFor(/^task (\S+)$/)
  const [, uploadEvent] = await run1.waitFor(/^effect NewFileUpload (\S+)$/)
  await run1.kill()

  // Run 2 gets the NewFileUpload again, and is killed after the
  // TranscodeComplete's side effect, before its ack. (The engine ran in
  // run 1's process: the transcode starts over after the kill.)
  const run2 = startApp(t, dir, state, embeddedEnv)
  const [, completeEvent] = await run2.waitFor(/^effect TranscodeComplete (\S+)$/)
  await run2.kill()
  assert.ok(run2.lines.includes(`duplicate ${uploadEvent}`), run2.fail('no duplicate NewFileUpload'))

  // Run 3 gets the TranscodeComplete again, recognises it and ends.
  const run3 = startApp(t, dir, state, embeddedEnv)
  const { code } = await run3.exited()
  assert.equal(code, 0, run3.fail(`exit code ${code}`))
  assert.ok(run3.lines.includes(`duplicate ${completeEvent}`), run3.fail('no duplicate TranscodeComplete'))
  assert.equal(run3.lines.at(-1), `done ${taskId} status=0`, run3.fail('not done'))

  const ledger = readLedger(state)
  assertEffectsOnce(ledger, { [uploadEvent]: 'NewFileUpload', [completeEvent]: 'TranscodeComplete' })
  // Each was killed before its ack, so each came again.
  assert.ok(deliveries(ledger, uploadEvent) >= 2, 'NewFileUpload delivered once')
  assert.ok(deliveries(ledger, completeEvent) >= 2, 'TranscodeComplete delivered once')
  const complete = ledger.find((r) => r.kind === 'effect' && r.eventId === completeEvent)
  assert.equal(complete.detail.taskId, taskId)
  assert.equal(complete.detail.renditions.length, 1)

  // The engine's own view: nothing left to deliver, the task done.
  const client = await vodtask.open(path.join(state, 'vodtask-data'))
  try {
    await assertQueueEmpty(client)
    const task = await client.describeTask(taskId)
    assert.equal(task.status, 'FINISH')
    assert.equal(task.errCode, 0)
  } finally {
    await client.close()
  }
})

test('the example app handles every event once across kill -9 (server)', async (t) => {
  const dir = project(t, 'transcode-app.mjs')
  const state = path.join(dir, 'state')
  const server = await startServer(t, path.join(dir, 'data'))
  const env = { ...embeddedEnv, VODTASK_URL: server.grpc, VODTASK_API_KEY: server.key }

  // Run 1 is killed after the TranscodeComplete's side effect, before its ack.
  const run1 = startApp(t, dir, state, env)
  const [, taskId] = await run1.waitFor(/^task (\S+)$/)
  const [, uploadEvent] = await run1.waitFor(/^effect NewFileUpload (\S+)$/)
  const [, completeEvent] = await run1.waitFor(/^effect TranscodeComplete (\S+)$/)
  await run1.kill()

  // Run 2 gets it again (the server released it with the broken stream).
  const run2 = startApp(t, dir, state, env)
  const { code } = await run2.exited()
  assert.equal(code, 0, run2.fail(`exit code ${code}`))
  assert.ok(run2.lines.includes(`duplicate ${completeEvent}`), run2.fail('no duplicate TranscodeComplete'))
  assert.equal(run2.lines.at(-1), `done ${taskId} status=0`, run2.fail('not done'))

  const ledger = readLedger(state)
  assertEffectsOnce(ledger, { [uploadEvent]: 'NewFileUpload', [completeEvent]: 'TranscodeComplete' })
  assert.ok(deliveries(ledger, completeEvent) >= 2, 'TranscodeComplete delivered once')

  const client = await vodtask.connect(server.grpc, { apiKey: server.key })
  try {
    await assertQueueEmpty(client)
  } finally {
    await client.close()
  }
})
