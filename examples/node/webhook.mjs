// HTTP callbacks (PUSH mode) received and verified with verifyWebhook. Needs
// a server that may call this machine:
//
//   target/debug/vodtask serve --data-dir D --allow-outbound-cidr 127.0.0.1/32
//   VODTASK_URL=http://127.0.0.1:50051 VODTASK_API_KEY=$(cat D/default.key) node webhook.mjs
import http from 'node:http'
import vodtask from 'vodtask'

const client = await vodtask.connect(process.env.VODTASK_URL, { apiKey: process.env.VODTASK_API_KEY })

let secret = ''
const received = new Promise((resolve) => {
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      try {
        // The raw body, exactly as received, and the request's headers.
        const event = vodtask.verifyWebhook(secret, req.headers, Buffer.concat(chunks))
        res.writeHead(204).end()
        server.close()
        resolve(event)
      } catch (e) {
        console.log('refused', e.code, e.message)
        res.writeHead(400).end()
      }
    })
  })
  server.listen(0, '127.0.0.1', async () => {
    const url = `http://127.0.0.1:${server.address().port}/vodtask`
    try {
      const config = await client.modifyEventConfig({ mode: 'PUSH', notificationUrl: url })
      secret = config.signingSecret
      await client.uploadBytes(Buffer.from('hello'), 'hello.txt')
    } catch (e) {
      // E.g. FAILED_PRECONDITION: a server without --allow-outbound-cidr
      // refuses a loopback URL rather than wait for callbacks in silence.
      console.error('error', e.code, e.message)
      process.exit(1)
    }
  })
})

const event = await received
console.log('verified', event.eventType, event.eventId, 'fileId', event.data.fileId)
await client.modifyEventConfig({ mode: 'PULL' })
