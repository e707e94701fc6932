// Type-checked (not run) by types.test.mjs: the declarations the package
// ships describe the API as the README uses it.
import vodtask, {
  type Client,
  type Event,
  type Task,
  type TaskSpec,
  type TaskStatus,
  type VodtaskError,
} from 'vodtask'

async function main(): Promise<void> {
  const client: Client = await vodtask.connect('http://127.0.0.1:50051', { apiKey: 'k' })
  const local: Client = await vodtask.open('./data', { workers: 2 })
  const { fileId } = await client.uploadFile('clip.mp4', { sourceContext: 'ctx' })
  const spec: TaskSpec = { transcode: { fileId, definitions: [100010] } }
  const taskId: string = await client.createTask(spec, { priority: 1 })
  const task: Task = await client.describeTask(taskId)
  const url: string | undefined = task.output?.transcode?.playSet[0]?.url
  const status: TaskStatus = task.status
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
  await local.consume(
    async (e: Event) => {
      // `data` is typed by the event type.
      if (e.eventType === 'TranscodeComplete') {
        const urls: string[] = (e.data.playSet ?? []).map((p) => p.url)
        const failed: boolean = e.data.status !== 0
        console.log(urls, failed)
      } else if (e.eventType === 'NewFileUpload') {
        const uploaded: string = e.data.fileId
        console.log(uploaded)
      } else if (e.eventType === 'ProcedureStateChanged') {
        for (const s of e.data.processTaskList) {
          if (s.taskType === 'CoverBySnapshot') console.log(s.output.imageUrl, s.input.positionType)
        }
      }
    },
    { signal: stop.signal, concurrency: 4 },
  )
  // Every matching task, a page at a time; or one page by hand.
  for await (const t of client.listTasks({ status: 'FINISH', createTime: { after: new Date() } })) console.log(t.taskId)
  const page = await client.listTasksPage({ createTime: { after: new Date() }, limit: 10 })
  const ids: string[] = page.tasks.map((t) => t.taskId)
  const next = await client.listTasksPage({ limit: 10, scrollToken: page.scrollToken })
  const overview = await client.taskOverview()
  const finished: number | undefined = overview.byStatus.FINISH
  // @ts-expect-error: a status is one of the enum's names
  await client.listTasksPage({ status: 'DONE' })

  const dead = await client.deadLetterEvents({ limit: 10 })
  const deadIds: string[] = dead.events.map((e) => e.eventId)
  const redriven: number = await client.redriveEvents(deadIds)
  const all: number = await client.redriveEvents()
  const resent: number = await client.resendEvents(deadIds)
  const attempts = await client.callbackAttempts({ eventId: 'ev-1' })
  const delivered: boolean = attempts.every((a) => a.outcome === 'DELIVERED')
  await client.callbackAttempts({ taskId })
  // @ts-expect-error: exactly one of eventId and taskId
  await client.callbackAttempts({ eventId: 'ev-1', taskId })
  const { signingSecret } = await client.rotateSigningSecret({ overlapSeconds: 3600 })

  const hook = vodtask.verifyWebhook('whsec_x', { 'webhook-id': 'x' }, Buffer.from('{}'))
  const kind: string = hook.eventType
  if (hook.eventType === 'PullComplete') console.log(hook.data.fileUrl)
  try {
    await client.describeTask('x')
  } catch (err) {
    const code: string = (err as VodtaskError).code
    console.log(code, url, status, width, ids, next, finished, redriven, all, resent, delivered, signingSecret, kind)
  }
  await local.close()
}
void main
