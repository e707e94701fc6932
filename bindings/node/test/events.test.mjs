// The queue's care against a real `vodtask serve`: dead letters, redrive
// and resend; in PUSH mode, with a real HTTP receiver, the callback
// attempts of an event and of a task, and a rotated signing secret.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import path from 'node:path'
import { vodtask, tempDir, startServer, within, eventually } from './helpers.mjs'

async function connectTo(t, extra) {
  const dir = tempDir(t)
  const server = await startServer(t, path.join(dir, 'data'), extra)
  const client = await vodtask.connect(server.grpc, { apiKey: server.key })
  t.after(() => client.close())
  return client
}

/** Takes the one deliverable event, gives it back and lets the next take dead-letter it (maxDeliveries 1). */
async function deadLetterNext(client) {
  const got = await client.pullEvents({ maxEvents: 1, waitSeconds: 5 })
  assert.equal(got.length, 1)
  assert.deepEqual(await client.nackEvents([got[0].msgHandle], 0), [{ msgHandle: got[0].msgHandle, status: 'NACKED' }])
  assert.deepEqual(await client.pullEvents({ maxEvents: 1, waitSeconds: 0 }), [])
  return got[0].event
}

test('dead letters, redrive and resend', async (t) => {
  const client = await connectTo(t, ['--workers', '0'])
  assert.equal((await client.modifyEventConfig({ maxDeliveries: 1 })).maxDeliveries, 1)
  await client.uploadBytes(Buffer.from('not media'), 'a.bin')
  const event = await deadLetterNext(client)
  assert.equal(event.eventType, 'NewFileUpload')

  const dead = await client.deadLetterEvents()
  assert.deepEqual(dead.events.map((e) => e.eventId), [event.eventId])
  assert.equal(dead.nextPageToken, '')
  // An Event as every path gives it: `data` parsed from the envelope.
  assert.equal(dead.events[0].data.fileName, 'a.bin')
  assert.equal((await client.eventsState()).deadLettered, 1)

  // Redriven by id: back in the queue with a fresh delivery count.
  assert.equal(await client.redriveEvents([event.eventId]), 1)
  assert.deepEqual(await client.deadLetterEvents({ limit: 10 }), { events: [], nextPageToken: '' })
  const [again] = await client.pullEvents({ maxEvents: 1, waitSeconds: 5 })
  assert.equal(again.event.eventId, event.eventId)
  assert.equal(again.event.deliveryCount, 1)
  assert.deepEqual(await client.confirmEvents([again.msgHandle]), [{ msgHandle: again.msgHandle, status: 'CONFIRMED' }])

  // Resent although confirmed: delivered again now.
  assert.equal(await client.resendEvents([event.eventId, 'ev-unknown']), 1)
  assert.equal((await deadLetterNext(client)).eventId, event.eventId)

  // Two dead letters, a page of one at a time; then all redriven at once.
  await client.uploadBytes(Buffer.from('more'), 'b.bin')
  const second = await deadLetterNext(client)
  const page1 = await client.deadLetterEvents({ limit: 1 })
  assert.equal(page1.events.length, 1)
  assert.notEqual(page1.nextPageToken, '')
  const page2 = await client.deadLetterEvents({ limit: 1, pageToken: page1.nextPageToken })
  assert.deepEqual(
    [...page1.events, ...page2.events].map((e) => e.eventId).sort(),
    [event.eventId, second.eventId].sort(),
  )
  assert.equal(await client.redriveEvents(), 2)
  assert.equal((await client.eventsState()).deadLettered, 0)

  await assert.rejects(client.resendEvents([]), { code: 'INVALID_ARGUMENT', message: /^event_ids: / })
})

/** An HTTP receiver on a free port: `next()` resolves to the next callback ({ headers, body }). */
async function receiver(t) {
  const received = []
  let wake = () => {}
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      res.writeHead(204).end()
      received.push({ headers: req.headers, body: Buffer.concat(chunks) })
      wake()
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    server.closeAllConnections()
    return new Promise((resolve) => server.close(resolve))
  })
  return {
    url: `http://127.0.0.1:${server.address().port}/vodtask`,
    next: (what) =>
      within(
        new Promise((resolve) => {
          // A callback that comes while nobody waits stays in `received`.
          const take = () => {
            if (received.length === 0) return (wake = take)
            wake = () => {}
            resolve(received.shift())
          }
          take()
        }),
        what,
      ),
  }
}

test('PUSH mode: callback attempts of an event and of a task, and a rotated secret', async (t) => {
  const client = await connectTo(t, ['--allow-outbound-cidr', '127.0.0.1/32'])
  const hook = await receiver(t)
  const config = await client.modifyEventConfig({ mode: 'PUSH', notificationUrl: hook.url })
  assert.equal(config.mode, 'PUSH')
  assert.match(config.signingSecret, /^whsec_/)

  const { fileId } = await client.uploadBytes(Buffer.from('x'), 'x.bin')
  const first = await hook.next('the NewFileUpload callback')
  const upload = vodtask.verifyWebhook(config.signingSecret, first.headers, first.body)
  assert.equal(upload.eventType, 'NewFileUpload')
  assert.equal(upload.data.fileId, fileId)
  // The receiver answered before the server recorded the attempt.
  const [attempt] = await eventually('the attempt recorded', async () => {
    const attempts = await client.callbackAttempts({ eventId: upload.eventId })
    return attempts.length > 0 && attempts
  })
  assert.equal(attempt.eventId, upload.eventId)
  assert.equal(attempt.attempt, 1)
  assert.equal(attempt.url, hook.url)
  assert.equal(attempt.httpStatus, 204)
  assert.equal(attempt.outcome, 'DELIVERED')
  assert.equal(attempt.error, '')
  assert.ok(Date.parse(attempt.time) > 0, attempt.time)

  // A task's events: the file deleted by a task.
  const taskId = await client.createTask({ deleteMedia: { fileIds: [fileId] } })
  const second = await hook.next('the FileDeleted callback')
  const deleted = vodtask.verifyWebhook(config.signingSecret, second.headers, second.body)
  assert.equal(deleted.eventType, 'FileDeleted')
  assert.equal(deleted.taskId, taskId)
  assert.deepEqual(deleted.data.fileInfo, [{ fileId }])
  const byTask = await eventually('the task event attempt recorded', async () => {
    const attempts = await client.callbackAttempts({ taskId })
    return attempts.length > 0 && attempts
  })
  assert.deepEqual(byTask.map((a) => [a.eventId, a.outcome]), [[deleted.eventId, 'DELIVERED']])
  await assert.rejects(client.callbackAttempts({ eventId: upload.eventId, taskId }), { code: 'INVALID_ARGUMENT' })

  // A new secret; during the overlap a callback is signed with both.
  const rotated = await client.rotateSigningSecret({ overlapSeconds: 3600 })
  assert.match(rotated.signingSecret, /^whsec_/)
  assert.notEqual(rotated.signingSecret, config.signingSecret)
  assert.ok(Date.parse(rotated.previousSecretExpireTime) > Date.now(), rotated.previousSecretExpireTime)
  const now = await client.eventConfig()
  assert.equal(now.signingSecret, rotated.signingSecret)
  assert.equal(now.previousSecretExpireTime, rotated.previousSecretExpireTime)

  // Resent in PUSH mode: called back again at once, under both secrets.
  assert.equal(await client.resendEvents([upload.eventId]), 1)
  const third = await hook.next('the resent callback')
  for (const secret of [rotated.signingSecret, config.signingSecret]) {
    assert.equal(vodtask.verifyWebhook(secret, third.headers, third.body).eventId, upload.eventId)
  }
  // Ending the overlap now: the old secret no longer verifies.
  const ended = await client.rotateSigningSecret({ overlapSeconds: 0 })
  assert.equal(ended.previousSecretExpireTime, null)
  // A new event: resending the last one again could race with the server
  // recording its delivery.
  const another = await client.uploadBytes(Buffer.from('y'), 'y.bin')
  const fourth = await hook.next('the callback after the overlap ended')
  assert.equal(vodtask.verifyWebhook(ended.signingSecret, fourth.headers, fourth.body).data.fileId, another.fileId)
  assert.throws(() => vodtask.verifyWebhook(rotated.signingSecret, fourth.headers, fourth.body), { code: 'INVALID_ARGUMENT' })
  await client.modifyEventConfig({ mode: 'PULL' })
})
