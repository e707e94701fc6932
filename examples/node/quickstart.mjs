// Quickstart: upload a generated clip, transcode it to 360p, follow the task
// to its end, handle an error. With VODTASK_URL and VODTASK_API_KEY set it
// talks to that server; otherwise it runs the engine in this process on a
// data dir of its own. Any number of copies may run at once. The README's
// Node section shows this file.
//
//   node quickstart.mjs
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import vodtask from 'vodtask'

const work = mkdtempSync(path.join(os.tmpdir(), 'vodtask-quickstart-'))

// A server (`vodtask serve`) ...
//   const client = await vodtask.connect('http://127.0.0.1:50051', { apiKey })
// ... or the engine in this process on a data dir (no server; the file
// URLs are served on a free local port):
const client = process.env.VODTASK_URL
  ? await vodtask.connect(process.env.VODTASK_URL, { apiKey: process.env.VODTASK_API_KEY })
  : await vodtask.open(path.join(work, 'data'))

// A 2-second test clip (ffmpeg's test pattern and a tone).
execFileSync('ffmpeg', ['-loglevel', 'error', '-y',
  '-f', 'lavfi', '-i', 'testsrc=duration=2:size=640x360:rate=25',
  '-f', 'lavfi', '-i', 'sine=duration=2', '-c:v', 'libx264', '-c:a', 'aac', '-shortest',
  path.join(work, 'clip.mp4')])

const { fileId } = await client.uploadFile(path.join(work, 'clip.mp4'))
const media = await client.describeMedia(fileId)
console.log('uploaded', fileId, `${media.metadata.width}x${media.metadata.height}`, media.metadata.durationSeconds, 's')

const taskId = await client.createTask({ transcode: { fileId, definitions: [100010] } })
console.log('task', taskId)

// Follow this task to its end: its state now, then each change. Waiting
// for one task takes nothing from the app's event queue, so copies of this
// script never take each other's results. (Events are for work on every
// task of the app, each handled by one of its consumers: see `consume` in
// transcode-app.mjs.)
for await (const t of client.watchTask(taskId)) console.log('state', t.status, t.progress)
const task = await client.waitTask(taskId) // the task as it ended
console.log('task', task.status, 'errCode', task.errCode, 'url', task.output.transcode.playSet[0].url)

// Errors are Errors with the gRPC status name in `code`.
try {
  await client.createTask({ transcode: { fileId, definitions: [5] } })
} catch (e) {
  console.log('error', e.code, e.message)
}
await client.close()
