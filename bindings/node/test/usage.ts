// Type-checked (not run) by types.test.mjs: the declarations the package
// ships describe the API as the README uses it.
import vodtask, { type Client, type Event, type Task, type TaskSpec, type VodtaskError } from 'vodtask'

async function main(): Promise<void> {
  const client: Client = await vodtask.connect('http://127.0.0.1:50051', { apiKey: 'k' })
  const local: Client = await vodtask.open('./data', { workers: 2 })
  const { fileId } = await client.uploadFile('clip.mp4', { sourceContext: 'ctx' })
  const spec: TaskSpec = { transcode: { fileId, definitions: [100010] } }
  const taskId: string = await client.createTask(spec, { priority: 1 })
  const task: Task = await client.describeTask(taskId)
  const url: string | undefined = task.output?.transcode?.playSet[0]?.url
  const status: string = task.status
  const media = await client.describeMedia(fileId)
  const width: number | undefined = media.metadata?.width
  for await (const d of client.subscribe({ maxInFlight: 16 })) {
    const e: Event = d.event
    const raw: string = e.contentJson
    await d.ack()
    await d.nack(5)
    await d.extend(60)
    break
  }
  const stop = new AbortController()
  await local.consume(async (e: Event) => { console.log(e.data, e.eventType) }, { signal: stop.signal, concurrency: 4 })
  const page = await client.listTasks({ createTime: { after: new Date() }, limit: 10 })
  const ids: string[] = page.tasks.map((t) => t.taskId)
  const hook = vodtask.verifyWebhook('whsec_x', { 'webhook-id': 'x' }, Buffer.from('{}'))
  const kind: string = hook.eventType
  try {
    await client.describeTask('x')
  } catch (err) {
    const code: string = (err as VodtaskError).code
    console.log(code, url, status, width, ids, kind)
  }
  await local.close()
}
void main
