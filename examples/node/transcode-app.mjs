// The example app: uploads a generated clip, transcodes it, and handles the
// events until the transcode's TranscodeComplete has been acked. Every step
// is safe to repeat after a crash at any point.
//
// Delivery is at least once: an event whose handler had not returned when
// the app died (its side effect may or may not have happened) comes again.
// So the handler records each side effect in its own ledger under the
// event's eventId, durably, before it returns (only then is the event
// acked), and does nothing for an eventId it has already recorded. Here the
// ledger record *is* the side effect; a real app would write it in the same
// transaction as its own change.
//
//   node transcode-app.mjs STATE_DIR [--slow SECONDS]
//
// STATE_DIR holds ledger.jsonl, clip.mp4 and (without VODTASK_URL and
// VODTASK_API_KEY, which connect to a server) the engine's data dir
// vodtask-data. To see a redelivery, run with --slow 5, kill -9 the app
// right after an `effect` line, and run it again: the event comes again
// (`delivery`), is recognised (`duplicate`) and acked, and the app ends with
// `done <taskId> status=0`.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import vodtask from 'vodtask'

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { slow: { type: 'string', default: '0' } },
})
const slowSeconds = Number(values.slow)
if (positionals.length !== 1 || !(slowSeconds >= 0)) {
  console.error('usage: node transcode-app.mjs STATE_DIR [--slow SECONDS]')
  process.exit(2)
}
const stateDir = positionals[0]
fs.mkdirSync(stateDir, { recursive: true })

// The ledger: one JSON record a line, each written and fsynced in one go.
const ledgerPath = path.join(stateDir, 'ledger.jsonl')
const ledger = { upload: null, task: null, effects: new Map() }
function remember(record) {
  if (record.kind === 'upload') ledger.upload = record
  if (record.kind === 'task') ledger.task = record
  if (record.kind === 'effect') ledger.effects.set(record.eventId, record)
}
if (fs.existsSync(ledgerPath)) {
  const bytes = fs.readFileSync(ledgerPath)
  // A crash mid-append leaves a last line without its newline: drop it (the
  // step that wrote it never finished, so it runs again: an event's handler
  // had not returned, so the event was not acked and comes again), and cut it
  // off so that the next append starts a line of its own.
  const whole = bytes.lastIndexOf(0x0a) + 1
  if (whole < bytes.length) fs.truncateSync(ledgerPath, whole)
  const lines = bytes.subarray(0, whole).toString('utf8').split('\n')
  for (const line of lines) if (line) remember(JSON.parse(line))
}
const ledgerFd = fs.openSync(ledgerPath, 'a')
function append(record) {
  fs.writeSync(ledgerFd, JSON.stringify(record) + '\n')
  fs.fsyncSync(ledgerFd)
  remember(record)
}

// The clip, made under a temporary name so that a crash never leaves half a clip.
const clip = path.join(stateDir, 'clip.mp4')
if (!fs.existsSync(clip)) {
  const partial = path.join(stateDir, 'clip.partial.mp4')
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc=duration=2:size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=duration=2',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', partial])
  fs.renameSync(partial, clip)
}

const client = process.env.VODTASK_URL
  ? await vodtask.connect(process.env.VODTASK_URL, { apiKey: process.env.VODTASK_API_KEY })
  : await vodtask.open(path.join(stateDir, 'vodtask-data'))

if (!ledger.upload) {
  // A crash before the append uploads the clip again on the next run: a
  // second file (and NewFileUpload), never a lost one.
  const { fileId } = await client.uploadFile(clip)
  append({ kind: 'upload', fileId })
  console.log('uploaded', fileId)
}
const { fileId } = ledger.upload
if (!ledger.task) {
  // The session id makes a repeated create (after a crash before the
  // append) return the task created the first time.
  const taskId = await client.createTask(
    { transcode: { fileId, definitions: [100010] } },
    { sessionId: `transcode-app-${fileId}` },
  )
  append({ kind: 'task', taskId })
  console.log('task', taskId)
}
const { taskId } = ledger.task

const isOurs = ({ eventType, data }) => eventType === 'TranscodeComplete' && data.vodTaskId === taskId
// The side effect of our TranscodeComplete, once handled (in any run).
const completion = () =>
  [...ledger.effects.values()].find((e) => e.eventType === 'TranscodeComplete' && e.detail.taskId === taskId)

function detailOf({ eventType, data }) {
  if (eventType === 'NewFileUpload') return { fileId: data.fileId }
  if (eventType === 'TranscodeComplete') {
    return { taskId: data.vodTaskId, status: data.status, renditions: (data.playSet ?? []).map((p) => p.url) }
  }
  return {}
}

// A previous run handled the completion and got as far as its ack (nothing
// is left unacked): nothing to consume. Otherwise the completion is still to
// come, new or again.
const state = await client.eventsState()
if (!completion() || state.ready + state.inFlight + state.delayed > 0) {
  const stop = new AbortController()
  await client.consume(async (event) => {
    const { eventId, eventType, deliveryCount } = event
    append({ kind: 'delivery', eventId, eventType, deliveryCount })
    console.log('delivery', eventType, eventId, deliveryCount)
    // Check and record in one synchronous step, so that no other handler
    // (concurrency 4) runs in between.
    if (ledger.effects.has(eventId)) {
      console.log('duplicate', eventId)
    } else {
      append({ kind: 'effect', eventId, eventType, detail: detailOf(event) })
      console.log('effect', eventType, eventId)
      await sleep(slowSeconds * 1000) // slow downstream work: the window for a kill before the ack
    }
    // consume acks this event (and the others running) before it returns.
    if (isOurs(event)) stop.abort()
  }, { signal: stop.signal, concurrency: 4 })
}

const { status } = completion().detail
console.log('done', taskId, `status=${status}`)
await client.close()
process.exitCode = status === 0 ? 0 : 1
