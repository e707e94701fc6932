// Bad arguments: every call of the package, given a wrong type or an
// unknown field, fails with code INVALID_ARGUMENT and a message naming the
// call and the field (never with napi-rs's own codes, StringExpected...);
// Promise-returning calls reject rather than throw. A field left out of a
// request is the service's to refuse, in its own words.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { vodtask, tempDir, within } from './helpers.mjs'

const url = 'http://127.0.0.1:1'
const ok = { transcode: { fileId: 'f', definitions: [100010] } }

/**
 * [message, call] for the client's methods, `c` the client. The message
 * starts with the call's name: args.js's checks of JS's own arguments and
 * the converter's of a request (vodtask_client::json) say the same words.
 */
const clientCases = [
  ['uploadFile: path: expected a string, got number', (c) => c.uploadFile(42)],
  ['uploadFile: options: expected an object, got string', (c) => c.uploadFile('a.mp4', 'a.mp4')],
  [
    'uploadFile: procedure.subtasks[0].transcode.definition: expected a 32-bit integer, got string',
    (c) => c.uploadFile('a.mp4', { procedure: { subtasks: [{ transcode: { definition: '100010' } }] } }),
  ],
  ['uploadBytes: bytes: expected a Uint8Array or Buffer, got string', (c) => c.uploadBytes('text', 'a.txt')],
  ['uploadBytes: fileName: expected a string, got undefined', (c) => c.uploadBytes(Buffer.from('x'))],
  ['uploadBytes: sourceContext: expected a string, got object', (c) => c.uploadBytes(Buffer.from('x'), 'x', { sourceContext: {} })],
  ['describeMedia: fileId: expected a string, got number', (c) => c.describeMedia(123)],
  ['createTask: spec: expected an object, got undefined', (c) => c.createTask()],
  ['createTask: spec.transcode.fileId: expected a string, got number', (c) => c.createTask({ transcode: { fileId: 5, definitions: [100010] } })],
  ['createTask: spec.transcode.definitions[1]: expected a 32-bit integer, got 1.5', (c) => c.createTask({ transcode: { fileId: 'f', definitions: [100010, 1.5] } })],
  ['createTask: spec.snapshotByTimeOffset.timeOffsetsMs[0]: expected an integer, got string', (c) => c.createTask({ snapshotByTimeOffset: { fileId: 'f', definition: 10, timeOffsetsMs: ['1000'] } })],
  ['createTask: spec.concat.outputTypes: expected an array, got string', (c) => c.createTask({ concat: { fileIds: ['a', 'b'], outputTypes: 'MP4' } })],
  ['createTask: spec.concat.outputTypes[0]: expected one of MP4, M3U8, got "AVI"', (c) => c.createTask({ concat: { fileIds: ['a', 'b'], outputTypes: ['AVI'] } })],
  ['createTask: spec.clip.startTimeOffset: expected a number, got string', (c) => c.createTask({ clip: { fileId: 'f', startTimeOffset: '0', endTimeOffset: 1 } })],
  ['createTask: spec.imageSprites: expected an object, got boolean', (c) => c.createTask({ imageSprites: true })],
  [
    'createTask: spec.pullUpload.url: unknown field; expected one of mediaUrl, fileName, sourceContext, timeoutSeconds, procedure',
    (c) => c.createTask({ pullUpload: { url: 'http://example.com/a.mp4' } }),
  ],
  ['createTask: spec.pullUpload.timeoutSeconds: expected a 32-bit integer, got 1099511627776', (c) => c.createTask({ pullUpload: { mediaUrl: 'http://example.com/a.mp4', timeoutSeconds: 2 ** 40 } })],
  ['createTask: spec.deleteMedia.fileIds[0]: expected a string, got null', (c) => c.createTask({ deleteMedia: { fileIds: [null] } })],
  [
    'createTask: spec.procedure.subtasks[0].coverBySnapshot.position: expected a number, got string',
    (c) => c.createTask({ procedure: { fileId: 'f', subtasks: [{ coverBySnapshot: { definition: 10, position: '50%' } }] } }),
  ],
  ['createTask: spec: only one of clip, concat may be set', (c) => c.createTask({ clip: { fileId: 'f' }, concat: { fileIds: [] } })],
  ['createTask: priority: expected a 32-bit integer, got string', (c) => c.createTask(ok, { priority: 'high' })],
  ['describeTask: taskId: expected a string, got null', (c) => c.describeTask(null)],
  ['redoTask: taskId: expected a string, got number', (c) => c.redoTask(1)],
  ['cancelTask: taskId: expected a string, got object', (c) => c.cancelTask({})],
  ['waitTask: taskId: expected a string, got number', (c) => c.waitTask(42)],
  ['listTasksPage: limit: expected a 32-bit integer, got string', (c) => c.listTasksPage({ limit: '10' })],
  ['listTasksPage: status: expected one of WAITING, PROCESSING, FINISH, ABORTED, got "DONE"', (c) => c.listTasksPage({ status: 'DONE' })],
  ['listTasksPage: createTime: expected an object, got string', (c) => c.listTasksPage({ createTime: 'today' })],
  [
    'listTasksPage: finishTime.after: expected an RFC 3339 string or seconds since the epoch, got boolean',
    (c) => c.listTasksPage({ finishTime: { after: true } }),
  ],
  // An invalid Date would become null (unset) in JSON: it is refused instead.
  [
    'taskOverview: createTime.before: expected an RFC 3339 string or seconds since the epoch, got "Invalid Date"',
    (c) => c.taskOverview({ createTime: { before: new Date('nope') } }),
  ],
  ['pullEvents: maxEvents: expected a 32-bit integer, got string', (c) => c.pullEvents({ maxEvents: '16' })],
  ['confirmEvents: msgHandles: expected an array, got string', (c) => c.confirmEvents('h')],
  ['confirmEvents: msgHandles[0]: expected a string, got number', (c) => c.confirmEvents([1])],
  ['extendEvents: seconds: expected a 32-bit integer, got undefined', (c) => c.extendEvents(['h'])],
  ['nackEvents: delaySeconds: expected a 32-bit integer, got string', (c) => c.nackEvents(['h'], '5')],
  ['modifyEventConfig: changes: expected an object, got undefined', (c) => c.modifyEventConfig()],
  ['modifyEventConfig: eventTypes.TranscodeComplete: expected a boolean, got string', (c) => c.modifyEventConfig({ eventTypes: { TranscodeComplete: 'yes' } })],
  ['modifyEventConfig: retryScheduleSeconds[1]: expected an integer, got 1.5', (c) => c.modifyEventConfig({ retryScheduleSeconds: [1, 1.5] })],
  ['deadLetterEvents: limit: expected a 32-bit integer, got string', (c) => c.deadLetterEvents({ limit: 'all' })],
  ['redriveEvents: eventIds: expected an array, got string', (c) => c.redriveEvents('ev-1')],
  ['redriveEvents: eventIds[0]: expected a string, got number', (c) => c.redriveEvents([1])],
  ['resendEvents: eventIds: expected an array, got undefined', (c) => c.resendEvents()],
  ['callbackAttempts: of: expected an object, got string', (c) => c.callbackAttempts('ev-1')],
  ['callbackAttempts: eventId: expected a string, got number', (c) => c.callbackAttempts({ eventId: 1 })],
  ['rotateSigningSecret: overlapSeconds: expected an integer, got string', (c) => c.rotateSigningSecret({ overlapSeconds: '1h' })],
  ['consume: handler: expected a function, got string', (c) => c.consume('handler')],
  ['consume: signal: expected an AbortSignal, got object', (c) => c.consume(() => {}, { signal: {} })],
  ['consume: concurrency: expected an integer in 0..4294967295, got -1', (c) => c.consume(() => {}, { concurrency: -1 })],
]

/**
 * [call, message, call] for requests the converter lets through with a
 * field missing (proto3 has no required fields): the service's own
 * validation refuses them, naming the field in the proto's spelling.
 */
const missingFieldCases = [
  ['createTask', /^spec\.transcode\.definitions: /, (c) => c.createTask({ transcode: { fileId: 'f' } })],
  ['createTask', /^spec: /, (c) => c.createTask({})],
  ['callbackAttempts', /^event_id: give exactly one of event_id and task_id$/, (c) => c.callbackAttempts({})],
]

/** [message, call] for the calls that return at once and throw. */
const syncClientCases = [
  ['subscribe: maxInFlight: expected a 32-bit integer, got string', (c) => c.subscribe({ maxInFlight: 'x' })],
  ['watchTask: taskId: expected a string, got undefined', (c) => c.watchTask()],
  ['listTasks: options: expected an object, got string', (c) => c.listTasks('FINISH')],
]

/** [message, call] for listTasks's loop, which fails at its first page. */
const iterationCases = [
  ['listTasks: limit: expected a 32-bit integer, got 2.5', (c) => c.listTasks({ limit: 2.5 })],
  ['listTasks: sortBy: expected one of CREATE_TIME, FINISH_TIME, got "NAME"', (c) => c.listTasks({ sortBy: 'NAME' })],
]

const deliveryCases = [
  ['delivery.nack: delaySeconds: expected an integer in 0..4294967295, got string', (d) => d.nack('soon')],
  ['delivery.extend: seconds: expected a 32-bit integer, got undefined', (d) => d.extend()],
]

const moduleCases = [
  ['connect: url: expected a string, got number', () => vodtask.connect(50051, { apiKey: 'k' })],
  ['connect: options: expected an object, got undefined', () => vodtask.connect(url)],
  ['connect: apiKey: expected a string, got undefined', () => vodtask.connect(url, {})],
  ['connect: timeoutMs: expected an integer in 0..4294967295, got -1', () => vodtask.connect(url, { apiKey: 'k', timeoutMs: -1 })],
  ['connect: connectTimeoutMs: expected an integer in 0..4294967295, got string', () => vodtask.connect(url, { apiKey: 'k', connectTimeoutMs: '5000' })],
  ['connect: caCert: expected a path, PEM text or a Buffer, got number', () => vodtask.connect(url, { apiKey: 'k', caCert: 1 })],
  ['open: dataDir: expected a string, got undefined', () => vodtask.open()],
  ['open: options: expected an object, got string', () => vodtask.open('data', 'fast')],
  ['open: workers: expected an integer in 0..4294967295, got 1.5', () => vodtask.open('data', { workers: 1.5 })],
  ['open: sync: expected a string, got boolean', () => vodtask.open('data', { sync: true })],
]

const syncModuleCases = [
  ['verifyWebhook: secret: expected a string, got undefined', () => vodtask.verifyWebhook(undefined, {}, '')],
  ['verifyWebhook: headers: expected an object, a Headers, a Map or [name, value] pairs, got string', () => vodtask.verifyWebhook('whsec_x', 'h', '')],
  ['verifyWebhook: headers[0]: expected a [name, value] pair, got string', () => vodtask.verifyWebhook('whsec_x', ['webhook-id'], '')],
  ['verifyWebhook: body: expected a string, a Uint8Array or a Buffer, got number', () => vodtask.verifyWebhook('whsec_x', {}, 42)],
]

/** Runs `call`, which must return a Promise (not throw) that rejects with `message`. */
async function rejects(message, call) {
  let promise
  assert.doesNotThrow(() => {
    promise = call()
  }, `${message}: threw instead of rejecting`)
  assert.ok(promise instanceof Promise, message)
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof Error)
    assert.deepEqual({ code: e.code, message: e.message }, { code: 'INVALID_ARGUMENT', message })
    return true
  })
}

function throws(message, call) {
  assert.throws(call, (e) => {
    assert.ok(e instanceof Error)
    assert.deepEqual({ code: e.code, message: e.message }, { code: 'INVALID_ARGUMENT', message })
    return true
  })
}

test('bad arguments of connect, open and verifyWebhook', async () => {
  for (const [message, call] of moduleCases) await rejects(message, call)
  for (const [message, call] of syncModuleCases) throws(message, call)
})

test("bad arguments of the client's and a delivery's methods", async (t) => {
  const dir = tempDir(t)
  const client = await vodtask.open(path.join(dir, 'data'), { workers: 0 })
  t.after(() => client.close())
  for (const [message, call] of clientCases) await rejects(message, () => call(client))
  for (const [message, call] of syncClientCases) throws(message, () => call(client))
  for (const [message, call] of iterationCases) {
    const tasks = call(client)
    await assert.rejects(tasks.next(), { code: 'INVALID_ARGUMENT', message })
  }
  for (const [, message, call] of missingFieldCases) {
    await assert.rejects(call(client), { code: 'INVALID_ARGUMENT', message })
  }

  await client.uploadBytes(Buffer.from('x'), 'x.bin')
  const subscription = client.subscribe()
  const delivery = await within(subscription.next(), 'the NewFileUpload delivery')
  for (const [message, call] of deliveryCases) await rejects(message, () => call(delivery))
  assert.equal(await delivery.ack(), 'CONFIRMED')
  subscription.close()
})

test('every call that takes arguments has a case above', () => {
  const covered = new Set([
    ...[...clientCases, ...syncClientCases, ...iterationCases, ...deliveryCases, ...moduleCases, ...syncModuleCases].map(
      ([m]) => m.split(':')[0],
    ),
    ...missingFieldCases.map(([name]) => name),
  ])
  // The methods (not getters) with parameters.
  const calls = (cls, prefix = '') =>
    Object.entries(Object.getOwnPropertyDescriptors(cls.prototype))
      .filter(([name, d]) => name !== 'constructor' && typeof d.value === 'function' && d.value.length > 0)
      .map(([name]) => prefix + name)
  const all = [
    ...['connect', 'open', 'verifyWebhook'],
    ...calls(vodtask.Client),
    ...calls(vodtask.Delivery, 'delivery.'),
    ...calls(vodtask.Subscription, 'subscription.'),
  ]
  assert.deepEqual(all.filter((name) => !covered.has(name)), [])
})
