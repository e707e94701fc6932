// The package against a real `vodtask serve`: upload, transcode, follow the
// events with a subscription, errors with their gRPC code.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { inspect } from 'node:util'
import { vodtask, tempDir, makeClip, startServer, within } from './helpers.mjs'

test('a remote client uploads, transcodes and follows the events with subscribe', async (t) => {
  const dir = tempDir(t)
  const clip = makeClip(dir)
  const server = await startServer(t, path.join(dir, 'data'))
  const client = await vodtask.connect(server.grpc, { apiKey: server.key })
  assert.equal(client.isEmbedded, false)

  const uploaded = await client.uploadFile(clip, { sourceContext: 'ctx' })
  assert.match(uploaded.fileId, /^\d{20}$/)
  const media = await client.describeMedia(uploaded.fileId)
  assert.equal(media.fileName, 'in.mp4')
  assert.equal(media.sourceType, 'CLIENT_UPLOAD')
  assert.equal(media.sourceContext, 'ctx')
  assert.equal(media.metadata.width, 320)
  assert.equal(media.metadata.height, 240)
  assert.deepEqual(media.metadata.streams.map((s) => s.codecType).sort(), ['audio', 'video'])

  const taskId = await client.createTask(
    { transcode: { fileId: uploaded.fileId, definitions: [100010] } },
    { priority: 3, sessionContext: 'mine' },
  )
  const seen = []
  const subscription = client.subscribe({ maxInFlight: 16 })
  await within(
    (async () => {
      for await (const d of subscription) {
        seen.push(d.event.eventType)
        assert.equal(await d.ack(), 'CONFIRMED')
        if (d.event.eventType === 'TranscodeComplete' && d.event.taskId === taskId) {
          // data is the envelope's data, parsed; contentJson the raw envelope.
          assert.equal(d.event.data.vodTaskId, taskId)
          assert.equal(JSON.parse(d.event.contentJson).data.vodTaskId, taskId)
          // data is parsed when first read; JSON.stringify and logs show it.
          assert.equal(d.event.data, d.event.data)
          assert.equal(JSON.parse(JSON.stringify(d.event)).data.vodTaskId, taskId)
          assert.match(inspect(d.event), /vodTaskId/)
          assert.equal(d.event.deliveryCount, 1)
          break
        }
      }
    })(),
    'TranscodeComplete on the subscription',
  )
  assert.deepEqual(seen, ['NewFileUpload', 'TranscodeComplete'])
  // `break` closed the subscription: a second loop ends at once.
  assert.equal(await subscription.next(), null)

  const task = await client.describeTask(taskId)
  assert.equal(task.status, 'FINISH')
  assert.equal(task.errCode, 0, task.message)
  assert.equal(task.taskType, 'TRANSCODE')
  assert.equal(task.priority, 3)
  assert.equal(task.sessionContext, 'mine')
  assert.deepEqual(task.input, { transcode: { fileId: uploaded.fileId, definitions: [100010] } })
  const [play] = task.output.transcode.playSet
  assert.equal(play.definition, 100010)
  assert.equal(play.vheight, 240) // never upscaled
  assert.ok(play.size > 0)
  assert.ok(Date.parse(task.finishTime) >= Date.parse(task.createTime))
  const state = await client.eventsState()
  assert.equal(state.ready + state.inFlight, 0)

  const finished = []
  for await (const t of client.listTasks({ limit: 5, status: 'FINISH', createTime: { before: new Date(Date.now() + 60_000) } })) {
    finished.push(t.taskId)
  }
  assert.deepEqual(finished, [taskId])
  const page = await client.listTasksPage({ status: 'FINISH', createTime: { after: new Date(Date.now() + 60_000) } })
  assert.deepEqual(page, { tasks: [], scrollToken: '' })
  const overview = await client.taskOverview()
  assert.equal(overview.total, 1)
  assert.equal(overview.byStatus.FINISH, 1)
  assert.equal(overview.byType.TRANSCODE, 1)
})

test('errors are Errors with the gRPC code and the server message', async (t) => {
  const dir = tempDir(t)
  const server = await startServer(t, path.join(dir, 'data'), ['--workers', '0'])
  const client = await vodtask.connect(server.grpc, { apiKey: server.key })

  await assert.rejects(client.describeTask('transcode-nope'), (e) => {
    assert.ok(e instanceof Error)
    assert.equal(e.code, 'NOT_FOUND')
    return true
  })
  await assert.rejects(client.createTask({ transcode: { fileId: '123', definitions: [5] } }), (e) => {
    assert.equal(e.code, 'INVALID_ARGUMENT')
    assert.match(e.message, /^spec\.transcode\.definitions\[0\]/)
    return true
  })
  // A spec with no kind is the service's to refuse; an unknown enum name
  // the converter's, before anything is sent.
  await assert.rejects(client.createTask({}), { code: 'INVALID_ARGUMENT', message: /^spec: / })
  await assert.rejects(client.listTasksPage({ status: 'DONE' }), {
    code: 'INVALID_ARGUMENT',
    message: 'listTasksPage: status: expected one of WAITING, PROCESSING, FINISH, ABORTED, got "DONE"',
  })

  const stranger = await vodtask.connect(server.grpc, { apiKey: 'not-a-key' })
  await assert.rejects(stranger.describeTask('x'), { code: 'UNAUTHENTICATED' })
  // A subscription's lasting failure ends the iteration with the error.
  await assert.rejects(
    within((async () => { for await (const _ of stranger.subscribe()) { /* none */ } })(), 'the refused stream'),
    { code: 'UNAUTHENTICATED' },
  )
  // So does consume's.
  await assert.rejects(within(stranger.consume(async () => {}), 'the refused consumer'), { code: 'UNAUTHENTICATED' })
  await assert.rejects(vodtask.connect('not a url', { apiKey: 'k' }), { code: 'INVALID_ARGUMENT' })
  // Nothing listens on port 1.
  await assert.rejects(vodtask.connect('http://127.0.0.1:1', { apiKey: 'k', connectTimeoutMs: 2000 }), { code: 'UNAVAILABLE' })
})
