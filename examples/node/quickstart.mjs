// Quickstart: upload a generated clip, transcode it to 360p, consume the
// task's events, handle an error. With VODTASK_URL and VODTASK_API_KEY set it
// talks to that server; otherwise it runs the engine in this process on
// ./vodtask-node-data. The README's Node section shows this file.
//
//   node quickstart.mjs
import { execFileSync } from 'node:child_process'
import vodtask from 'vodtask'

// A server (`vodtask serve`) ...
//   const client = await vodtask.connect('http://127.0.0.1:50051', { apiKey })
// ... or the engine in this process on a data dir (no server; the file
// URLs are served on a free local port):
const client = process.env.VODTASK_URL
  ? await vodtask.connect(process.env.VODTASK_URL, { apiKey: process.env.VODTASK_API_KEY })
  : await vodtask.open('./vodtask-node-data')

// A 2-second test clip (ffmpeg's test pattern and a tone).
execFileSync('ffmpeg', ['-loglevel', 'error', '-y',
  '-f', 'lavfi', '-i', 'testsrc=duration=2:size=640x360:rate=25',
  '-f', 'lavfi', '-i', 'sine=duration=2', '-c:v', 'libx264', '-c:a', 'aac', '-shortest', 'clip.mp4'])

const { fileId } = await client.uploadFile('clip.mp4')
const media = await client.describeMedia(fileId)
console.log('uploaded', fileId, `${media.metadata.width}x${media.metadata.height}`, media.metadata.durationSeconds, 's')

const taskId = await client.createTask({ transcode: { fileId, definitions: [100010] } })
console.log('task', taskId)

// Events until this task's TranscodeComplete: a handler that returns acks
// the event, one that throws nacks it (it comes again with backoff).
const stop = new AbortController()
await client.consume(async (event) => {
  console.log('event', event.eventType, event.taskId || event.data.fileId)
  if (event.eventType === 'TranscodeComplete' && event.taskId === taskId) stop.abort()
}, { signal: stop.signal, concurrency: 4 })

const task = await client.describeTask(taskId)
console.log('task', task.status, 'errCode', task.errCode, 'url', task.output.transcode.playSet[0].url)

// Errors are Errors with the gRPC status name in `code`.
try {
  await client.createTask({ transcode: { fileId, definitions: [5] } })
} catch (e) {
  console.log('error', e.code, e.message)
}
await client.close()
