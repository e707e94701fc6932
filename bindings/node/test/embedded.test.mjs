// The package with the engine in this process (`open`): consume with an
// AbortSignal, a throwing handler nacks, every task spec converts both ways.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { vodtask, tempDir, makeClip, within } from './helpers.mjs'

async function openClient(t, dir, options) {
  const client = await vodtask.open(path.join(dir, 'data'), options)
  t.after(() => client.close())
  return client
}

test('an embedded client transcodes and consume acks until aborted', async (t) => {
  const dir = tempDir(t)
  const clip = makeClip(dir)
  const client = await openClient(t, dir)
  assert.equal(client.isEmbedded, true)
  const uploaded = await client.uploadFile(clip)
  const taskId = await client.createTask({ transcode: { fileId: uploaded.fileId, definitions: [100010] } })

  const handled = []
  const stop = new AbortController()
  await within(
    client.consume(
      async (event) => {
        handled.push(event.eventType)
        if (event.eventType === 'TranscodeComplete' && event.taskId === taskId) {
          assert.equal(event.data.vodTaskId, taskId)
          stop.abort()
        }
      },
      { signal: stop.signal, concurrency: 4 },
    ),
    'TranscodeComplete through consume',
  )
  assert.deepEqual(handled, ['NewFileUpload', 'TranscodeComplete'])
  const task = await client.describeTask(taskId)
  assert.equal(task.status, 'FINISH')
  assert.equal(task.errCode, 0, task.message)
  // Every handled event was acked.
  const state = await client.eventsState()
  assert.deepEqual([state.ready, state.inFlight, state.delayed], [0, 0, 0])
  // Output files are served by the embedded file server.
  const got = await fetch(task.output.transcode.playSet[0].url, { method: 'HEAD' })
  assert.equal(got.status, 200)
})

// A handler fails by throwing (a plain function) or by rejecting (an async
// one); index.js settles both itself, so both paths are checked.
for (const [how, fail] of [
  ['throwing', () => { throw new Error('not yet') }],
  ['rejecting', async () => { await null; throw new Error('not yet') }],
]) {
  test(`a ${how} handler nacks and the event comes again`, async (t) => {
    const dir = tempDir(t)
    const client = await openClient(t, dir, { workers: 0 })
    await client.uploadBytes(Buffer.from('bytes'), 'blob.bin')
    const seen = []
    const stop = new AbortController()
    await within(
      client.consume(
        (event) => {
          seen.push(event.deliveryCount)
          if (event.deliveryCount < 2) return fail()
          stop.abort()
        },
        { signal: stop.signal },
      ),
      'the redelivery after a nack',
    )
    assert.deepEqual(seen, [1, 2])
    const state = await client.eventsState()
    assert.deepEqual([state.ready, state.inFlight, state.delayed], [0, 0, 0])
  })
}

test('a delivery can be extended and nacked with a delay', async (t) => {
  const dir = tempDir(t)
  const client = await openClient(t, dir, { workers: 0 })
  await client.uploadBytes(Buffer.from('bytes'), 'blob.bin')
  const subscription = client.subscribe({ maxInFlight: 1 })
  t.after(() => subscription.close())
  const d = await within(subscription.next(), 'a delivery')
  assert.equal(await d.extend(120), 'EXTENDED')
  assert.equal(await d.nack(3600), 'NACKED')
  assert.equal(await d.ack(), 'EXPIRED')
  const state = await client.eventsState()
  assert.deepEqual([state.ready, state.inFlight, state.delayed], [0, 0, 1])
})

test('every task spec converts to the service and back', async (t) => {
  const dir = tempDir(t)
  const client = await openClient(t, dir, { workers: 0 }) // nothing runs
  const clip = makeClip(dir, 'a.mp4', 1)
  const a = (await client.uploadFile(clip)).fileId
  const b = (await client.uploadFile(clip, { fileName: 'b.mp4' })).fileId
  const spare = (await client.uploadBytes(Buffer.from('x'), 'spare.bin')).fileId
  const subtasks = [
    { transcode: { definition: 100010 } },
    { snapshotByTimeOffset: { definition: 10, timeOffsetsMs: [0, 500] } },
    { imageSprites: { definition: 20 } },
    { coverBySnapshot: { definition: 20, positionType: 'PERCENT', position: 50 } },
  ]
  const specs = [
    ['TRANSCODE', { transcode: { fileId: a, definitions: [100010, 100210] } }],
    ['SNAPSHOT_BY_TIME_OFFSET', { snapshotByTimeOffset: { fileId: a, definition: 20, timeOffsetsMs: [100, 900] } }],
    ['CONCAT', { concat: { fileIds: [a, b], outputTypes: ['MP4', 'M3U8'] } }],
    ['CLIP', { clip: { fileId: a, startTimeOffset: 0.25, endTimeOffset: 0.75 } }],
    ['IMAGE_SPRITES', { imageSprites: { fileId: b, definition: 10 } }],
    [
      'PULL_UPLOAD',
      {
        pullUpload: {
          mediaUrl: 'https://example.com/v.mp4',
          fileName: 'v.mp4',
          sourceContext: 'pulled',
          timeoutSeconds: 60,
          procedure: { subtasks: [subtasks[0]], notifyMode: 'CHANGE' },
        },
      },
    ],
    ['DELETE_MEDIA', { deleteMedia: { fileIds: [spare] } }],
    ['PROCEDURE', { procedure: { fileId: b, subtasks, notifyMode: 'NONE' } }],
  ]
  for (const [type, spec] of specs) {
    const id = await client.createTask(spec, { sessionId: `s-${type}` })
    const task = await client.describeTask(id)
    assert.equal(task.taskType, type)
    assert.equal(task.status, 'WAITING')
    assert.deepEqual(task.input, spec, type)
    assert.equal(task.sessionId, `s-${type}`)
  }
  // The same session id with another request: ALREADY_EXISTS.
  await assert.rejects(
    client.createTask({ transcode: { fileId: b, definitions: [100010] } }, { sessionId: 's-TRANSCODE' }),
    { code: 'ALREADY_EXISTS' },
  )
  // Cancel a waiting task, then redo it.
  const clips = []
  for await (const task of client.listTasks({ taskType: 'CLIP' })) clips.push(task.taskId)
  assert.equal(clips.length, 1)
  const [clipTask] = clips
  assert.equal((await client.cancelTask(clipTask)).status, 'ABORTED')
  const redone = await client.redoTask(clipTask)
  assert.equal(redone.status, 'WAITING')
  assert.equal(redone.attempt, 2)
  assert.equal(redone.previousAttempts[0].status, 'ABORTED')
  await assert.rejects(client.createTask({ clip: { fileId: a, startTimeOffset: 0, endTimeOffset: 1 }, concat: { fileIds: [], outputTypes: [] } }), {
    code: 'INVALID_ARGUMENT',
    message: 'createTask: spec: only one of clip, concat may be set',
  })
  await assert.rejects(client.createTask({ concat: { fileIds: [a, b], outputTypes: ['AVI'] } }), {
    code: 'INVALID_ARGUMENT',
    message: 'createTask: spec.concat.outputTypes[0]: expected one of MP4, M3U8, got "AVI"',
  })
  // While this client holds the data dir, another open fails.
  await assert.rejects(vodtask.open(path.join(dir, 'data')), { code: 'FAILED_PRECONDITION', message: /in use/ })
})

test('listTasks goes through every page; listTasksPage gives one', async (t) => {
  const dir = tempDir(t)
  const client = await openClient(t, dir, { workers: 0 }) // nothing runs
  const { fileId } = await client.uploadBytes(Buffer.from('x'), 'x.bin')
  const created = []
  for (let i = 0; i < 5; i++) created.push(await client.createTask({ deleteMedia: { fileIds: [fileId] } }, { sessionId: `s-${i}` }))
  const newestFirst = [...created].reverse()

  // Three pages of at most two: every task once, newest first.
  const listed = []
  for await (const task of client.listTasks({ limit: 2 })) listed.push(task.taskId)
  assert.deepEqual(listed, newestFirst)
  const oldestFirst = []
  for await (const task of client.listTasks({ limit: 2, order: 'ASC', taskType: 'DELETE_MEDIA' })) oldestFirst.push(task.taskId)
  assert.deepEqual(oldestFirst, created)
  // Nothing matches: the loop ends at once.
  for await (const task of client.listTasks({ status: 'FINISH' })) assert.fail(`unexpected ${task.taskId}`)

  // By hand: a page and its token, until the token is empty.
  const first = await client.listTasksPage({ limit: 3 })
  assert.deepEqual(first.tasks.map((task) => task.taskId), newestFirst.slice(0, 3))
  assert.notEqual(first.scrollToken, '')
  const second = await client.listTasksPage({ limit: 3, scrollToken: first.scrollToken })
  assert.deepEqual(second.tasks.map((task) => task.taskId), newestFirst.slice(3))
  assert.equal(second.scrollToken, '')

  // The iterator fetches a page only when the loop needs it: leaving the
  // loop early leaves the rest unfetched, and a later page's failure comes
  // when the loop gets there.
  const tasks = client.listTasks({ limit: 1 })
  assert.equal((await tasks.next()).value.taskId, newestFirst[0])
  await client.close()
  await assert.rejects(tasks.next(), { code: 'UNAVAILABLE', message: 'client: closed' })
})

test("open takes sync: 'normal' and refuses a mode it does not know", async (t) => {
  const dir = tempDir(t)
  const data = path.join(dir, 'data')
  await assert.rejects(vodtask.open(data, { sync: 'fast' }), {
    code: 'INVALID_ARGUMENT',
    message: `sync: must be 'full' or 'normal', not "fast"`,
  })
  // What a `normal` engine acknowledged is there when the data dir opens again.
  const client = await vodtask.open(data, { workers: 0, sync: 'normal' })
  const blob = await client.uploadBytes(new TextEncoder().encode('kept'), 'kept.bin')
  const id = await client.createTask({ deleteMedia: { fileIds: [blob.fileId] } })
  await client.close()
  // Closed, the client refuses calls and the data dir is free at once.
  await assert.rejects(client.describeTask(id), { code: 'UNAVAILABLE', message: 'client: closed' })
  assert.throws(() => client.subscribe(), { code: 'UNAVAILABLE', message: 'client: closed' })
  const again = await openClient(t, dir, { workers: 0 })
  assert.equal((await again.describeTask(id)).status, 'WAITING')
})

test('verifyWebhook accepts a vodtask signature and refuses a tampered body', async () => {
  const { createHmac, randomBytes } = await import('node:crypto')
  const key = randomBytes(32)
  const secret = `whsec_${key.toString('base64')}`
  const body = JSON.stringify({
    version: '4.0',
    eventType: 'TranscodeComplete',
    eventId: 'ev-1',
    taskSequence: 1,
    data: { vodTaskId: 'transcode-1', status: 0 },
  })
  const ts = Math.floor(Date.now() / 1000)
  const sign = (b, t = ts) => `v1,${createHmac('sha256', key).update(`ev-1.${t}.${b}`).digest('base64')}`
  const headers = { 'webhook-id': 'ev-1', 'webhook-timestamp': String(ts), 'webhook-signature': sign(body) }

  const event = vodtask.verifyWebhook(secret, headers, Buffer.from(body))
  assert.equal(event.eventType, 'TranscodeComplete')
  assert.equal(event.taskId, 'transcode-1')
  assert.deepEqual(event.data, { vodTaskId: 'transcode-1', status: 0 })
  assert.equal(event.contentJson, body)
  // A fetch Headers object and a string body work too.
  assert.equal(vodtask.verifyWebhook(secret, new Headers(headers), body).eventId, 'ev-1')
  assert.equal(vodtask.verifyWebhook(secret, Object.entries(headers), body).eventId, 'ev-1')
  assert.equal(vodtask.verifyWebhook(secret, new Map(Object.entries(headers)), body).eventId, 'ev-1')

  assert.throws(() => vodtask.verifyWebhook(secret, headers, body.replace('"status":0', '"status":1')), {
    code: 'INVALID_ARGUMENT',
  })
  const stale = { ...headers, 'webhook-timestamp': String(ts - 600), 'webhook-signature': sign(body, ts - 600) }
  assert.throws(() => vodtask.verifyWebhook(secret, stale, body), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => vodtask.verifyWebhook('nope', headers, body), { code: 'INVALID_ARGUMENT' })
})
